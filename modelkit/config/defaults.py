"""Every TrainConfig field's default, by name: what a setting nobody gave is (auto puts a preset's
value back to it, the Train page tells the person's values from it, a labelling folder splits as
a run would)."""

from __future__ import annotations

from typing import Any

from modelkit.config import schema


def config_defaults() -> dict[str, Any]:
    return {s.name: s.default for s in schema()}
