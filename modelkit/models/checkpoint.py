"""Checkpoints written so that a crash never leaves a half file, read without running pickles.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so it loads with
``torch.load(weights_only=True)``: a file from elsewhere cannot execute code on load.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from modelkit.atomic import atomic_write_bytes
from modelkit.errors import ModelkitError

FORMAT_VERSION = 1


class CheckpointError(ModelkitError, RuntimeError):
    """A checkpoint that is missing, damaged, unsafe or not ours; the message names the file."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format": "modelkit", "format_version": FORMAT_VERSION, **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint or state_dict file safely; every failure becomes a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch wraps the real reason in a long generic text; the inner error says what was
        # found. Only a reference to code (a global, a call) is unsafe; anything else is damage.
        inner = exc.__context__ if isinstance(exc.__context__, pickle.UnpicklingError) else exc
        detail = _first_line(inner)
        if any(word in detail for word in _CODE_MARKERS):
            raise CheckpointError(
                f"{path}: refused to load: the file contains Python objects that could run code "
                f"when loaded, so it is not a plain checkpoint ({detail})"
            ) from None
        raise CheckpointError(
            f"{path}: checkpoint is damaged or not a PyTorch file ({detail})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - damaged bytes raise anything (struct.error, ...)
        raise CheckpointError(
            f"{path}: checkpoint is damaged or not a PyTorch file ({_first_line(exc)})"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(payload).__name__})")
    return payload


# Words in torch's weights-only refusals that mean "this file references code".
_CODE_MARKERS = ("GLOBAL", "global", "reduce", "new object", "Can only build", "persistent")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0][:200] if text else ""
    if first and not isinstance(exc, LookupError):  # KeyError('101') alone says nothing
        return first
    return f"{type(exc).__name__}: {first}".rstrip(": ")


def require_modelkit(payload: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Checkpoints used for inference must carry our metadata (classes, preprocessing)."""
    if payload.get("format") != "modelkit":
        raise CheckpointError(
            f"{path}: not a modelkit checkpoint (no class names or preprocessing stored); "
            "use it as starting weights with --weights PATH instead"
        )
    for key in ("model", "arch", "classes", "preprocess", "config"):
        if key not in payload:
            raise CheckpointError(f"{path}: modelkit checkpoint is missing '{key}'")
    return payload
