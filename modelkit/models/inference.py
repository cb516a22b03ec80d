"""The one way to turn a checkpoint into the model inference runs: a single classifier, or an
ensemble of them (``models.ensemble``). The Predictor and export both come through here, so a
kind of model that one of them can load, the other can too."""

from __future__ import annotations

from typing import Any

from torch import nn

from modelkit.models.ensemble import ENSEMBLE, ensemble_from_payload, member_model


def model_from_payload(payload: dict[str, Any]) -> nn.Module:
    """The eval-mode CPU model of a checkpoint payload that ``validate_metadata`` accepted,
    its weights loaded (strictly: a weight missing or left over is an error, not a guess)."""
    if payload["arch"] == ENSEMBLE:
        model: nn.Module = ensemble_from_payload(payload)
    else:
        model = member_model(payload["arch"], payload["config"], len(payload["classes"]))
    model.load_state_dict(payload["model"])
    return model.eval()
