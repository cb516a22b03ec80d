"""model_card.json: what a serving system needs to feed an exported model and read it, and the
proof that each export reproduces the run's model (its parity table, ``exports[fmt]["parity"]``).

One card per export folder, shared by every format exported there: each export rewrites the
common part (classes, input, calibration, metrics) and its own entry under ``exports``, keeping
the other formats' entries, so the card always describes the checkpoint exported last.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelkit.atomic import atomic_write_json
from modelkit.runs.folder import RunFolder, read_json
from modelkit.serving.export_inputs import LoadedRun
from modelkit.serving.predictor import resolve_checkpoint

CARD = "model_card.json"
EXPORT_DIR = "export"


def export_dir(run_dir: Path) -> Path:
    """Where a run's exports and their card are written unless told otherwise."""
    return Path(run_dir) / EXPORT_DIR


def calibration_record(payload: dict[str, Any]) -> dict[str, float]:
    """The checkpoint's temperature and unknown threshold (1 and 0 when not calibrated)."""
    cal = payload.get("calibration") or {}
    return {
        "temperature": float(cal.get("temperature", 1.0)),
        "unknown_threshold": float(cal.get("threshold", 0.0)),
    }


def read_card(out: Path) -> dict[str, Any]:
    """The card in export folder ``out`` (empty when missing or unreadable)."""
    card = read_json(Path(out) / CARD, {})
    return card if isinstance(card, dict) else {}


def write_card(loaded: LoadedRun, out: Path, fmt: str, entry: dict[str, Any]) -> Path:
    """Write the card in ``out`` with ``entry`` (file, bytes, parity, …) as ``exports[fmt]``."""
    payload = loaded.payload
    pre = payload["preprocess"]
    card_path = out / CARD
    exports = read_card(out).get("exports", {})
    exports = exports if isinstance(exports, dict) else {}
    exports[fmt] = {**entry, "exported_at": datetime.now(UTC).isoformat(timespec="seconds")}
    status = read_json(RunFolder(loaded.run_dir).status, {}) or {}
    card = {
        "run": loaded.run_dir.name,
        "arch": payload["arch"],
        "classes": list(payload["classes"]),
        "checkpoint": {
            "file": loaded.checkpoint.name,
            "epoch": payload.get("epoch"),
            "mtime_ns": loaded.checkpoint.stat().st_mtime_ns,
        },
        "input": {
            "name": "images",
            "shape": ["batch", 3, int(pre["image_size"]), int(pre["image_size"])],
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "preprocess": (
                f"resize the shorter side to {pre['resize_size']} and centre-crop a square "
                f"(EXIF rotation applied), centre-crop {pre['image_size']}, scale to [0, 1], "
                "then (x - mean) / std per channel"
            ),
            "image_size": int(pre["image_size"]),
            "resize_size": int(pre["resize_size"]),
            "mean": list(pre["mean"]),
            "std": list(pre["std"]),
            # the exported graph is one view; the run evaluated the mean over its TTA views
            "test_time_augmentation": _tta_note(str(pre.get("tta", "none"))),
        },
        "output": {"name": "logits", "shape": ["batch", len(payload["classes"])]},
        "calibration": {
            **calibration_record(payload),
            "how": "probabilities = softmax(logits / temperature); answer 'unknown' when the "
            "largest is below unknown_threshold (the ONNX and OpenVINO files' 'probabilities' "
            "output does the first step)",
        },
        "metrics": status.get("best") or payload.get("metrics") or {},
        "training_config": payload["config"],
        "exports": exports,
    }
    atomic_write_json(card_path, card)
    return card_path


def _tta_note(tta: str) -> str:
    if tta == "none":
        return "none"
    return (
        f"{tta}: the run's evaluation and the Predictor average the logits over flipped"
        f"{' and corner-cropped' if tta == 'flip_crops' else ''} views; the exported model "
        "computes one centre view, so do that averaging yourself to match them"
    )


def card_is_current(run: str | Path, fmt: str, files: tuple[str, ...]) -> bool:
    """Whether the run's export of ``fmt`` (its ``files``) was made from its current best
    checkpoint."""
    checkpoint = resolve_checkpoint(run)
    out = export_dir(checkpoint.parent.parent)
    card = read_card(out)
    ck = card.get("checkpoint", {})
    return (
        all((out / f).is_file() for f in files)
        and fmt in card.get("exports", {})
        and isinstance(ck, dict)
        and ck.get("file") == checkpoint.name
        and checkpoint.is_file()
        and ck.get("mtime_ns") == checkpoint.stat().st_mtime_ns
    )
