"""OpenVINO IR (``model.xml`` + ``model.bin``), fp32 and int8, from the run's verified ONNX graph.

The IR is converted from the ONNX file modelkit writes (same input name, the same ``logits`` and
calibrated ``probabilities`` outputs, a free batch axis), so every backend serves one graph.
Weights are saved as fp32 (``save_model`` would halve them to fp16 by default, a silent change
of the model) and the CPU plugin is told to compute in f32: on CPUs with bf16 units it would
otherwise pick bf16 by itself, which is another unannounced loss of precision.

int8 goes through NNCF's post-training quantisation (Apache-2.0, OpenVINO's own tool), on the
same training images as the ONNX int8 export; the calibrated head stays float. NNCF's two bias
corrections each lost a few images where the other lost none, depending on the model, so both
are made and the one closer to fp32 on training images calibration did not see is kept.
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


def write_ir(
    onnx_path: Path,
    xml_path: Path,
    calibration: np.ndarray | None = None,
    check: np.ndarray | None = None,
) -> dict:
    """Convert ``onnx_path`` to IR at ``xml_path`` (and its .bin), quantised to int8 on
    ``calibration`` images when given (choosing the bias correction on ``check`` images, when
    there are enough); return what was done (for the model card)."""
    require()
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    info: dict[str, Any] = {"weights": "fp32", "converted_from": "ONNX"}
    if calibration is not None:
        model, chosen = _quantize_closest(model, calibration, check)
        info = {"converted_from": "ONNX"}
        info.update(
            tool=f"NNCF post-training quantisation ({chosen['bias_correction']} bias correction)",
            weights="int8, per output channel",
            activations="uint8/int8, per tensor",
            calibration_images=int(len(calibration)),
            **chosen,
        )
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    if calibration is not None:
        info["float_layers"] = float_layers(compile_model(xml_path))
    return info


MIN_CHECK_IMAGES = 32  # fewer held-out images than this cannot tell two quantisations apart


def _quantize_closest(model, calibration: np.ndarray, check: np.ndarray | None):
    """The int8 model (full or fast bias correction) whose calibrated probabilities are closer
    to fp32's on ``check`` (mean KL divergence), and the record of that choice.

    On hymenoptera's 153 val images one run lost 2 images with the full correction and none with
    the fast one; a ResNet-18 lost 1 with the fast one and none with the full; on Caltech-101 the
    full one was better by 13 of 1,829. The held-out divergence picked the better one each time
    (benchmarks/results/export_openvino_int8_choice_cpu2.json)."""
    if check is None or len(check) < MIN_CHECK_IMAGES:
        return _quantize(model, calibration, fast=False), {"bias_correction": "full"}
    reference = _probabilities(model, check)
    scores: dict[str, float] = {}
    candidates = {}
    for name, fast in (("full", False), ("fast", True)):  # a clone each: model is quantised twice
        candidates[name] = _quantize(model.clone(), calibration, fast=fast)
        scores[name] = _mean_kl(reference, _probabilities(candidates[name], check))
    best = min(scores, key=lambda name: scores[name])
    return candidates[best], {
        "bias_correction": best,
        "chosen_by": (
            f"mean KL divergence from fp32's probabilities on {len(check)} training images "
            "calibration did not use (lower is closer)"
        ),
        "divergence_from_fp32": {name: round(value, 6) for name, value in scores.items()},
    }


def _probabilities(model, images: np.ndarray) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", FP32_CONFIG)
    output = compiled.output("probabilities")
    return np.concatenate([compiled(images[i : i + 32])[output] for i in range(0, len(images), 32)])


def _mean_kl(reference: np.ndarray, other: np.ndarray) -> float:
    p = np.clip(reference.astype(np.float64), 1e-12, 1.0)
    q = np.clip(other.astype(np.float64), 1e-12, 1.0)
    return float((p * (np.log(p) - np.log(q))).sum(axis=1).mean())


def _quantize(model, calibration: np.ndarray, fast: bool):
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
            # neither correction is better on every model (see _quantize_closest)
            fast_bias_correction=fast,
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
