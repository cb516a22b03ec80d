"""Export a run's model for serving: TorchScript or ONNX, each checked right after it is written.

The exported graph is the eval-mode network on CPU in fp32. Its input is what the model sees in
training and evaluation: ``N x 3 x S x S`` float32, RGB, normalised with the run's mean and std,
after a square resize to ``resize_size`` and a centre crop of ``image_size`` (the model card says
so); the batch axis is dynamic. After writing, the file is loaded back (torch.jit.load /
onnxruntime) and run on sample images (the run's validation images when it has any, else
random ones) next to the PyTorch model; the largest absolute difference of the logits is
returned and stored in ``runs/<id>/export/model_card.json`` with classes, input, normalisation,
best metrics and the training config.

Calibration is baked into the ONNX graph: besides ``logits`` (raw, as before) it has a second
output ``probabilities`` = softmax(logits / T) with the run's temperature T, so a serving system
gets calibrated confidences without modelkit. The card records T and the "unknown" threshold
(for TorchScript, whose single output stays the raw logits, the card is where T is read).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelkit.atomic import atomic_write_json
from modelkit.data.augment import eval_batch
from modelkit.data.imageio import ImageLoadError, load_image, square_resize
from modelkit.errors import ModelkitError
from modelkit.models import registry as models
from modelkit.models.checkpoint import load_checkpoint, require_modelkit
from modelkit.models.metadata import validate_metadata
from modelkit.runs.folder import RunFolder, read_json
from modelkit.serving.predictor import resolve_checkpoint

FORMATS = ("torchscript", "onnx")
FILENAMES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
CARD = "model_card.json"
ONNX_OPSET = 17
SAMPLES = 16


class ExportError(ModelkitError, RuntimeError):
    """The export could not be written or does not reproduce the model; says which and why."""


@dataclass
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float  # largest |logit difference| against PyTorch on the sample images
    samples: int
    sample_source: str  # "val images" | "random images"
    card: Path


@dataclass
class LoadedRun:
    run_dir: Path
    checkpoint: Path
    payload: dict[str, Any]
    model: torch.nn.Module  # eval mode, CPU, fp32

    @property
    def image_size(self) -> int:
        return int(self.payload["preprocess"]["image_size"])


def load_run_model(run: str | Path) -> LoadedRun:
    """A run folder (or checkpoint file) as an eval-mode CPU model with its metadata."""
    checkpoint = resolve_checkpoint(run)
    payload = require_modelkit(load_checkpoint(checkpoint), checkpoint)
    validate_metadata(payload, checkpoint)
    cfg = payload["config"]
    model = models.build_model(
        payload["arch"],
        len(payload["classes"]),
        cfg.get("head", "linear"),
        cfg.get("head_hidden", []),
        cfg.get("head_dropout", 0.0),
    )
    model.load_state_dict(payload["model"])
    folder = RunFolder(checkpoint.parent.parent)  # a checkpoint inside a run: that run
    run_dir = folder.path if folder.checkpoints == checkpoint.parent else Path(run)
    return LoadedRun(run_dir, checkpoint, payload, model.eval())


def sample_inputs(loaded: LoadedRun, count: int = SAMPLES) -> tuple[torch.Tensor, str]:
    """Up to ``count`` validation images preprocessed as the Predictor does, or random ones."""
    pre = loaded.payload["preprocess"]
    size, resize = int(pre["image_size"]), int(pre["resize_size"])
    splits = RunFolder(loaded.run_dir).read_splits() or {}
    squares = []
    val = splits.get("val") if isinstance(splits, dict) else None
    for path, _label in (val or [])[: count * 2]:
        try:
            squares.append(square_resize(load_image(path, min_size=resize), resize))
        except (ImageLoadError, OSError):
            continue
        if len(squares) == count:
            break
    if squares:
        batch = torch.from_numpy(np.stack(squares))
        source = "val images"
    else:
        g = torch.Generator().manual_seed(0)
        batch = torch.randint(0, 256, (count, resize, resize, 3), generator=g, dtype=torch.uint8)
        source = "random images"
    norm = models.recorded_normalisation(pre)
    return eval_batch(batch, size, channels_last=False, norm=norm), source


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    """A temp path in ``path``'s folder, renamed over ``path`` when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _export_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(model, example, check_trace=False)
        with _temp_beside(path) as tmp:
            torch.jit.save(traced, str(tmp))
        loaded = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return loaded(x)

    return run


class _Calibrated(torch.nn.Module):
    """The model with a second output: probabilities calibrated by the run's temperature."""

    def __init__(self, model: torch.nn.Module, temperature: float):
        super().__init__()
        self.model, self.temperature = model, float(temperature)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, torch.softmax(logits / self.temperature, dim=1)


def calibration_record(payload: dict[str, Any]) -> dict[str, float]:
    """The checkpoint's temperature and unknown threshold (1 and 0 when not calibrated)."""
    cal = payload.get("calibration") or {}
    return {
        "temperature": float(cal.get("temperature", 1.0)),
        "unknown_threshold": float(cal.get("threshold", 0.0)),
    }


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, temperature: float):
    try:
        import onnx  # noqa: F401 - the TorchScript-based exporter needs it
        import onnxruntime  # noqa: F401 - to check the file right after writing it
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs the onnx and onnxruntime packages ({exc.name} is missing): "
            "pip install onnx onnxruntime"
        ) from None
    with warnings.catch_warnings(), _temp_beside(path) as tmp:
        warnings.simplefilter("ignore")  # the legacy exporter warns that it is legacy
        # dynamo=False: the torch.export-based exporter needs onnxscript; this one needs only
        # onnx, works offline, and handles ResNets with a dynamic batch axis.
        torch.onnx.export(
            _Calibrated(model, temperature).eval(),  # a new module trains: export restores it
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["images"],
            output_names=["logits", "probabilities"],
            dynamic_axes={
                "images": {0: "batch"},
                "logits": {0: "batch"},
                "probabilities": {0: "batch"},
            },
            opset_version=ONNX_OPSET,
        )
    session = onnx_session(path)

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])

    return run


def onnx_session(path: str | Path, threads: int = 0):
    """An onnxruntime CPU session for ``path`` (threads 0: onnxruntime's default).

    Its threads do not spin-wait for work after a run: spinning threads would take the CPU
    from PyTorch (training, or the other backends in a benchmark) in the same process."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_run(run: str | Path, fmt: str, out_dir: str | Path | None = None) -> ExportResult:
    """Write ``fmt`` (torchscript | onnx) for a run's best checkpoint, check it, update the card."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {FORMATS}")
    loaded = load_run_model(run)
    out = Path(out_dir) if out_dir else loaded.run_dir / "export"
    path = out / FILENAMES[fmt]
    samples, source = sample_inputs(loaded)
    example = samples[:1]  # traced at batch 1, checked at batch len(samples): the axis is free
    try:
        if fmt == "torchscript":
            run_exported = _export_torchscript(loaded.model, example, path)
        else:
            temperature = calibration_record(loaded.payload)["temperature"]
            run_exported = _export_onnx(loaded.model, example, path, temperature)
        with torch.no_grad():
            expected = loaded.model(samples)
        got = run_exported(samples)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - exporters raise anything; say which step failed
        raise ExportError(f"{fmt} export of {loaded.checkpoint} failed: {exc}") from exc
    if got.shape != expected.shape:
        raise ExportError(f"{path}: output shape {tuple(got.shape)}, expected {expected.shape}")
    diff = float((got.float() - expected).abs().max())
    card = write_card(loaded, out, fmt, path, diff, len(samples), source)
    return ExportResult(path, fmt, diff, len(samples), source, card)


def write_card(
    loaded: LoadedRun, out: Path, fmt: str, path: Path, diff: float, n: int, source: str
) -> Path:
    """model_card.json: what a serving system needs to feed the exported model and read it."""
    payload = loaded.payload
    pre = payload["preprocess"]
    card_path = out / CARD
    old = read_json(card_path, {}) or {}
    status = read_json(RunFolder(loaded.run_dir).status, {}) or {}
    exports = old.get("exports", {}) if isinstance(old, dict) else {}
    exports[fmt] = {
        "file": path.name,
        "bytes": path.stat().st_size,
        "max_abs_diff": diff,
        "verified_on": f"{n} {source}",
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **({"opset": ONNX_OPSET} if fmt == "onnx" else {}),
    }
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
            "largest is below unknown_threshold (the ONNX file's 'probabilities' output does the "
            "first step)",
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


def card_is_current(run: str | Path, fmt: str) -> bool:
    """Whether the run's export of ``fmt`` was made from its current best checkpoint."""
    checkpoint = resolve_checkpoint(run)
    run_dir = checkpoint.parent.parent
    card = read_json(run_dir / "export" / CARD, {}) or {}
    ck = card.get("checkpoint", {}) if isinstance(card, dict) else {}
    return (
        (run_dir / "export" / FILENAMES[fmt]).is_file()
        and fmt in card.get("exports", {})
        and ck.get("file") == checkpoint.name
        and checkpoint.is_file()
        and ck.get("mtime_ns") == checkpoint.stat().st_mtime_ns
    )
