"""OpenVINO IR (``model.xml`` + ``model.bin``), fp32 and int8, from the run's verified ONNX graph.

The IR is converted from the ONNX file modelkit writes (same input name, the same ``logits`` and
calibrated ``probabilities`` outputs, a free batch axis), so every backend serves one graph.
Weights are saved as fp32 (``save_model`` would halve them to fp16 by default, a silent change
of the model) and the CPU plugin is told to compute in f32: on CPUs with bf16 units it would
otherwise pick bf16 by itself, which is another unannounced loss of precision.

int8 goes through NNCF's post-training quantisation (Apache-2.0, OpenVINO's own tool), on the
same training images as the ONNX int8 export; the calibrated head stays float.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from modelkit.errors import ModelkitError

FP32_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


class OpenVinoError(ModelkitError, RuntimeError):
    """OpenVINO (or NNCF, for int8) is missing or could not convert the model."""


def require(package: str = "openvino") -> None:
    """Raise a clear error naming the pip command when ``package`` is not installed."""
    if importlib.util.find_spec(package) is None:
        what = "OpenVINO int8 export" if package == "nncf" else "The openvino backend"
        raise OpenVinoError(f"{what} needs the {package} package: pip install {package}")


def compile_model(xml: str | Path, threads: int = 0):
    """An OpenVINO CPU model compiled for f32 arithmetic (int8 layers stay int8)."""
    require()
    import openvino as ov

    config: dict[str, Any] = dict(FP32_CONFIG)
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(str(xml), "CPU", config)


def write_ir(onnx_path: Path, xml_path: Path, calibration: np.ndarray | None = None) -> dict:
    """Convert ``onnx_path`` to IR at ``xml_path`` (and its .bin), quantised to int8 on
    ``calibration`` images when given; return what was done (for the model card)."""
    require()
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    info: dict[str, Any] = {"weights": "fp32", "converted_from": "ONNX"}
    if calibration is not None:
        model, info = _quantize(model, calibration), {"converted_from": "ONNX"}
        info.update(
            tool="NNCF post-training quantisation (full bias correction)",
            weights="int8, per output channel",
            activations="uint8/int8, per tensor",
            calibration_images=int(len(calibration)),
        )
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    if calibration is not None:
        info["float_layers"] = float_layers(compile_model(xml_path))
    return info


def _quantize(model, calibration: np.ndarray):
    require("nncf")
    # NNCF draws progress bars on stdout, where `predict` writes its answers: send them to stderr
    with contextlib.redirect_stdout(sys.stderr):
        import nncf

        logging.getLogger("nncf").setLevel(logging.ERROR)  # notes that would fill stderr
        batches = [calibration[i : i + 16] for i in range(0, len(calibration), 16)]
        return nncf.quantize(
            model,
            nncf.Dataset(batches),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(batches),  # counted in dataset items, here batches of 16 images
            # the full bias correction: on Caltech-101's 1,829 val images 0.05 points lost and
            # 98.7% top-1 agreement, against 0.38 and 98.4% with the fast one, for ~4 s more
            # (benchmarks/results/export_openvino_int8_bias_correction_cpu2.json)
            fast_bias_correction=False,
            # the calibrated probabilities (logits / T, softmax) stay float, as in the ONNX file
            ignored_scope=nncf.IgnoredScope(types=["Softmax", "Divide"], validate=False),
        )


def float_layers(compiled) -> list[dict[str, Any]]:
    """The layers the CPU plugin runs in float after int8 quantisation, by layer type (read
    from the executed graph, so fused and dropped layers are not counted)."""
    names: dict[str, list[str]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        kind = str(rt["layerType"]) if "layerType" in rt else op.get_type_name()
        precision = str(rt["runtimePrecision"]) if "runtimePrecision" in rt else ""
        if kind in ("Input", "Output", "Parameter", "Result", "Const", "Constant"):
            continue
        if precision.lower() in ("f32", "fp32", "bf16", "f16"):
            names.setdefault(kind, []).append(op.get_friendly_name())
    counts = Counter({k: len(v) for k, v in names.items()})
    return [
        {"layer_type": k, "count": n, "why": _why(k), "layers": names[k][:10]}
        for k, n in counts.most_common()
    ]


def _why(kind: str) -> str:
    if kind in ("Softmax", "Divide", "Eltwise", "Subgraph"):
        return "the calibrated probabilities head or the float epilogue of an int8 layer"
    if kind in ("Reorder", "Reshape", "Convert", "Transpose"):
        return "layout or type change between layers; moves data without arithmetic"
    return "no int8 kernel for this layer in the CPU plugin, or NNCF left it float for accuracy"
