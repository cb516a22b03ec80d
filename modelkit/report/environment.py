"""Where and when the run trained, and with what software: what a reader needs to trust or
repeat a result (a number from a GPU run with another torch may not be reproduced on a CPU)."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

PACKAGES = ("modelkit", "torch", "torchvision", "numpy", "pillow", "scikit-learn", "onnxruntime")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return ""
    s = int(round(seconds))
    return (
        f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s"
        if s >= 3600
        else f"{s // 60}m {s % 60:02d}s"
    )


def training_rows(status: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) about the training as status.json recorded it."""
    rows = [
        ("state", status.get("state")),
        ("ended because", status.get("reason") or status.get("error")),
        ("device", status.get("device")),
        ("precision", status.get("precision")),
        ("host", status.get("host")),
        ("started", status.get("started_at")),
        ("resumed", status.get("resumed_at")),
        ("ended", status.get("ended_at")),
        ("time spent training", _duration(status.get("active_s"))),
        ("epochs done", status.get("epoch")),
    ]
    return [(k, str(v)) for k, v in rows if v not in (None, "")]


def report_rows(device: str) -> list[tuple[str, str]]:
    """(what, value) about this machine and the software the report was written with."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = [
        ("report written", datetime.now(UTC).isoformat(timespec="seconds")),
        ("report's device (evaluation, Grad-CAM)", device),
        ("python", sys.version.split()[0]),
        ("platform", platform.platform()),
        ("GPU", gpu),
    ]
    return rows + [(name, _version(name)) for name in PACKAGES]
