"""What inference reads from a checkpoint, checked before it is used.

A checkpoint may come from someone else: its metadata decides the model that is built, the labels
that are shown and how much memory each image takes. ``validate_metadata`` refuses, naming the
file, a payload whose architecture is unknown (an ensemble's members are each checked as one
model is), whose class names are not a list of plain strings of
sane length and count (``modelkit.names``), whose image size is outside 16-1024 or whose resize
size does not go with it, whose head has an absurd shape (its widths, number of layers and the
weights between them are bounded as the config bounds them, and all its weights, from the
architecture's feature width through the hidden layers to the number of classes, together: a
1.6 MB checkpoint of 100,000 classes after a hidden layer of 8192 peaked at 3.9 GB building its
model), or whose calibration (temperature, unknown threshold) is
out of range. The Predictor and export call it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelkit.config.rules import head_problem
from modelkit.models.checkpoint import CheckpointError
from modelkit.models.ensemble import ENSEMBLE, MAX_MEMBERS, MIN_MEMBERS
from modelkit.models.registry import ARCHITECTURES, feature_width
from modelkit.names import classes_problem


def validate_metadata(payload: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``payload`` (already through ``require_modelkit``), or CheckpointError naming ``path``."""
    problem = metadata_problem(payload)
    if problem:
        raise CheckpointError(f"{path}: the checkpoint's metadata is not valid: {problem}")
    return payload


MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024  # the Train form's range
MAX_HEAD_HIDDEN = 8192  # the config's bound on head_hidden


def metadata_problem(payload: dict[str, Any]) -> str | None:
    """The first thing wrong with what inference reads from a checkpoint, or None.

    A checkpoint may come from someone else: its metadata decides the model that is built and how
    much memory each image takes, so every field inference reads is checked before it is used."""
    if not isinstance(payload["model"], dict):
        return "'model' is not a dictionary of weights"
    arch = payload["arch"]
    if arch != ENSEMBLE and (not isinstance(arch, str) or arch not in ARCHITECTURES):
        return f"'arch' {str(arch)[:40]!r} is not a known architecture"
    problem = classes_problem(payload["classes"], "'classes'")
    if problem:
        return problem
    if arch == ENSEMBLE:
        model = _members_problem(payload.get("members"), len(payload["classes"]))
        config = None if isinstance(payload["config"], dict) else "'config' is not a dictionary"
    else:
        model, config = None, _config_problem(payload["config"], arch, len(payload["classes"]))
    return (
        _preprocess_problem(payload["preprocess"])
        or model
        or config
        or _calibration_problem(payload.get("calibration"))
    )


def _members_problem(members: Any, classes: int) -> str | None:
    """An ensemble's ``members``: 2-3 of them, each checked as a single model's metadata is."""
    if not isinstance(members, list) or not MIN_MEMBERS <= len(members) <= MAX_MEMBERS:
        return f"'members' is not a list of {MIN_MEMBERS} to {MAX_MEMBERS} models"
    for n, member in enumerate(members, 1):
        if not isinstance(member, dict):
            return f"member {n} is not a dictionary"
        arch = member.get("arch")
        if not isinstance(arch, str) or arch not in ARCHITECTURES:
            return f"member {n}: 'arch' {str(arch)[:40]!r} is not a known architecture"
        problem = _preprocess_problem(member.get("preprocess")) or _config_problem(
            member.get("config"), arch, classes
        )
        if problem:
            return f"member {n}: {problem}"
    return None


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _preprocess_problem(pre: Any) -> str | None:
    if not isinstance(pre, dict):
        return "'preprocess' is not a dictionary"
    size = pre.get("image_size")
    if not _int_in(size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE):
        return f"image size {size!r:.20} is not a whole number from 16 to 1024"
    expected = round(size / 0.875)  # the centre-crop ratio every checkpoint is written with
    resize = pre.get("resize_size")
    if not _int_in(resize, size, expected + 2) or resize < expected - 2:
        return f"resize size {resize!r:.20} does not match image size {size} (expected {expected})"
    for key in ("mean", "std"):
        value = pre.get(key)
        if value is not None and not (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            return f"'{key}' is not a list of 3 numbers"
    return None


def _config_problem(cfg: Any, arch: str, classes: int) -> str | None:
    if not isinstance(cfg, dict):
        return "'config' is not a dictionary"
    if not isinstance(cfg.get("head", "linear"), str):
        return "config 'head' is not text"
    hidden = cfg.get("head_hidden", [])
    if not isinstance(hidden, list) or not all(_int_in(h, 1, MAX_HEAD_HIDDEN) for h in hidden):
        return f"config 'head_hidden' is not a list of whole numbers from 1 to {MAX_HEAD_HIDDEN}"
    kind = cfg.get("head", "linear")
    problem = head_problem(hidden, kind, feature_width(arch), classes)
    if problem:
        return f"config {problem}"
    dropout = cfg.get("head_dropout", 0.0)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        return "config 'head_dropout' is not a number from 0 to 1"
    return None


def _calibration_problem(cal: Any) -> str | None:
    """The optional ``calibration`` record (modelkit.evaluation.calibration): temperature > 0,
    unknown threshold and target accuracy in 0..1."""
    if cal is None:
        return None
    if not isinstance(cal, dict):
        return "'calibration' is not a dictionary"
    t = cal.get("temperature", 1.0)
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0.01 <= t <= 100:
        return "calibration 'temperature' is not a number from 0.01 to 100"
    for key in ("threshold", "target_accuracy"):
        v = cal.get(key, 0.0)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
            return f"calibration '{key}' is not a number from 0 to 1"
    return None
