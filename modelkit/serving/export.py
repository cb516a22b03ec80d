"""Export a run's model for serving, each format proven on the run's own images before it lands.

Formats: TorchScript, ONNX (fp32), ONNX int8 (ONNX Runtime static quantisation,
``quantize.py``), OpenVINO IR fp32 and int8 (``openvino_export.py``). The exported graph is the
eval-mode network in fp32 (int8 where quantised). Its input is what the model sees in
evaluation: ``N x 3 x S x S`` float32, RGB, normalised with the run's mean and std, after a square
resize to ``resize_size`` and a centre crop of ``image_size`` (the model card says so); the batch
axis is dynamic.

Every export is written into a staging folder, loaded back and run next to the PyTorch model on
the run's validation images (``parity.py``: top-1 agreement, accuracy overall and per class,
probability difference, file size, speed on this CPU). Only then are its files moved into place
and the table stored in ``runs/<id>/export/model_card.json`` (``exports[fmt]["parity"]``). An
export whose accuracy falls more than ``max_drop`` points is refused with the table
(``ExportRefused``), and no model file is left behind: quantisation must not lose accuracy
silently.

Calibration is baked into the ONNX and OpenVINO graphs: besides ``logits`` (raw) they have a
second output ``probabilities`` = softmax(logits / T) with the run's temperature T, so a serving
system gets calibrated confidences without modelkit. The card records T and the "unknown"
threshold (for TorchScript, whose single output stays the raw logits, the card is where T is
read).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelkit.errors import ModelkitError
from modelkit.runs.folder import RunFolder
from modelkit.serving import EXPORT_FORMATS, export_inputs, model_card, parity
from modelkit.serving.export_inputs import LoadedRun, load_run_model
from modelkit.serving.model_card import CARD, calibration_record, export_dir

FORMATS = EXPORT_FORMATS
FILENAMES = {
    "torchscript": "model.torchscript.pt",
    "onnx": "model.onnx",
    "onnx-int8": "model.int8.onnx",
    "openvino": "model.openvino.xml",  # with model.openvino.bin beside it
    "openvino-int8": "model.openvino.int8.xml",
}
INT8 = ("onnx-int8", "openvino-int8")
DEFAULT_MAX_DROP = 1.0  # accuracy points an export may lose before it is refused
CALIBRATION_IMAGES = 128  # training images that fit the int8 ranges
CHECK_IMAGES = 256  # other training images that choose between OpenVINO int8 variants
ONNX_OPSET = 17
SAMPLES = 16

__all__ = [
    "CARD",
    "FORMATS",
    "ExportError",
    "ExportRefused",
    "LoadedRun",
    "calibration_record",
    "export_run",
    "load_run_model",
]


class ExportError(ModelkitError, RuntimeError):
    """The export could not be written or does not reproduce the model; says which and why."""


class ExportRefused(ExportError):
    """The export ran but lost more accuracy than allowed; ``parity`` holds its table."""

    def __init__(self, message: str, fmt: str, table: dict[str, Any]):
        super().__init__(message)
        self.format, self.parity = fmt, table


@dataclass
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float  # largest |logit difference| against PyTorch on the checked images
    samples: int
    sample_source: str  # "val images" | "random images"
    card: Path
    parity: dict[str, Any] = field(default_factory=dict)  # the table stored in the card
    files: tuple[Path, ...] = ()  # every file of the export (OpenVINO: .xml and .bin)


def files_of(fmt: str) -> tuple[str, ...]:
    """The file names an export of ``fmt`` consists of (the model file first)."""
    name = FILENAMES[fmt]
    return (name, name[: -len(".xml")] + ".bin") if name.endswith(".xml") else (name,)


def sample_inputs(loaded: LoadedRun, count: int = SAMPLES) -> tuple[torch.Tensor, str]:
    """Up to ``count`` validation images preprocessed as the Predictor does, or random ones."""
    images = export_inputs.split_images(loaded.run_dir, "val", limit=count)
    x, _kept = export_inputs.preprocess(loaded.payload, images.paths)
    if len(x):
        return x, "val images"
    return export_inputs.random_inputs(loaded.payload, count), "random images"


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A temporary folder inside ``out`` for an export's files until they are proven; removed
    (with whatever it holds) when the block ends, so a failed or refused export leaves nothing."""
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".export-"))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _export_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(x)).numpy()

    return run


class _Calibrated(torch.nn.Module):
    """The model with a second output: probabilities calibrated by the run's temperature."""

    def __init__(self, model: torch.nn.Module, temperature: float):
        super().__init__()
        self.model, self.temperature = model, float(temperature)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, torch.softmax(logits / self.temperature, dim=1)


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, temperature: float):
    try:
        import onnx  # noqa: F401 - the TorchScript-based exporter needs it
        import onnxruntime  # noqa: F401 - to check the file right after writing it
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs the onnx and onnxruntime packages ({exc.name} is missing): "
            "pip install onnx onnxruntime"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter warns that it is legacy
        # dynamo=False: the torch.export-based exporter needs onnxscript; this one needs only
        # onnx, works offline, and handles ResNets with a dynamic batch axis.
        torch.onnx.export(
            _Calibrated(model, temperature).eval(),  # a new module trains: export restores it
            (example,),
            str(path),
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
    return onnx_runner(path)


def onnx_runner(path: Path, threads: int = 0) -> parity.Runner:
    session = onnx_session(path, threads)
    return lambda x: session.run(["logits"], {"images": x})[0]


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


Progress = Callable[[str], None]


def _write(
    fmt: str, loaded: LoadedRun, stage: Path, example: torch.Tensor, note: Progress
) -> tuple[parity.Runner, dict[str, Any]]:
    """Write ``fmt`` into ``stage``; return a runner of the written file and what was done."""
    path = stage / FILENAMES[fmt]
    if fmt == "torchscript":
        return _export_torchscript(loaded.model, example, path), {}
    temperature = calibration_record(loaded.payload)["temperature"]
    fp32 = path if fmt == "onnx" else stage / "fp32.onnx"
    runner = _export_onnx(loaded.model, example, fp32, temperature)
    if fmt == "onnx":
        return runner, {"opset": ONNX_OPSET}
    calibration = None
    if fmt in INT8:
        note("calibrating int8 ranges on training images")
        x, calibrated_on = export_inputs.calibration_inputs(loaded, CALIBRATION_IMAGES)
        calibration = x.numpy()
    if fmt == "onnx-int8":
        from modelkit.serving.quantize import quantize_onnx

        info = quantize_onnx(fp32, path, calibration)
        info["calibrated_on"] = calibrated_on
        return onnx_runner(path), {"opset": ONNX_OPSET, "quantization": info}
    from modelkit.serving import openvino_export as ov

    check = None
    if calibration is not None:
        check = export_inputs.check_inputs(loaded, CHECK_IMAGES, CALIBRATION_IMAGES).numpy()
    info = ov.write_ir(fp32, path, calibration, check)
    if calibration is not None:
        info["calibrated_on"] = calibrated_on
    compiled = ov.compile_model(path)
    output = compiled.output("logits")
    return (lambda x: compiled(x)[output]), {"openvino": info}


def export_run(
    run: str | Path,
    fmt: str,
    out_dir: str | Path | None = None,
    max_drop: float = DEFAULT_MAX_DROP,
    timing: bool = True,
    progress: Progress | None = None,
) -> ExportResult:
    """Write ``fmt`` (one of FORMATS) for a run's best checkpoint, prove it on the run's
    validation images, and record the proof in the model card; refuse (ExportRefused, nothing
    written) when its accuracy falls more than ``max_drop`` points."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {FORMATS}")
    note = progress or (lambda _message: None)
    loaded = load_run_model(run)
    if not out_dir:  # into the run folder: not through a link a foreign run put there
        RunFolder(loaded.run_dir).check_writable()
    out = Path(out_dir) if out_dir else export_dir(loaded.run_dir)
    example, _source = sample_inputs(loaded, 1)  # traced at batch 1: the batch axis is free
    images = export_inputs.split_images(loaded.run_dir, "val", limit=parity.MAX_IMAGES)
    temperature = calibration_record(loaded.payload)["temperature"]
    with _staging(out) as stage:
        note(f"writing {fmt}")
        try:
            runner, info = _write(fmt, loaded, stage, example, note)
            note(f"checking {fmt} against PyTorch on the validation images")
            size = sum((stage / f).stat().st_size for f in files_of(fmt))
            table = parity.measure(
                parity.torch_runner(loaded.model),
                runner,
                loaded.payload,
                images,
                size,
                temperature,
                timing,
            )
        except ModelkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - exporters raise anything; say which step failed
            raise ExportError(f"{fmt} export of {loaded.checkpoint} failed: {exc}") from exc
        drop = parity.accuracy_drop_points(table)
        if drop > max_drop:
            raise ExportRefused(
                f"{fmt} export refused: accuracy fell {drop:.1f} points, more than the "
                f"{max_drop:g} allowed (--max-drop); no model file was written.\n"
                + parity.format_table(fmt, table),
                fmt,
                table,
            )
        for name in reversed(files_of(fmt)):  # OpenVINO: the .bin before the .xml that reads it
            os.replace(stage / name, out / name)
    summary = table["summary"]
    path = out / FILENAMES[fmt]
    entry = {
        "file": path.name,
        "files": list(files_of(fmt)),
        "bytes": summary["file_bytes"],
        "max_abs_diff": summary["max_abs_logit_diff"],
        "verified_on": summary["verified_on"],
        **info,
        "parity": table,
    }
    card = model_card.write_card(loaded, out, fmt, entry)
    source = "random images" if "random" in summary["verified_on"] else f"{images.split} images"
    return ExportResult(
        path,
        fmt,
        summary["max_abs_logit_diff"],
        summary["images"],
        source,
        card,
        table,
        tuple(out / f for f in files_of(fmt)),
    )


def card_is_current(run: str | Path, fmt: str) -> bool:
    """Whether the run's export of ``fmt`` was made from its current best checkpoint."""
    return model_card.card_is_current(run, fmt, files_of(fmt))
