"""ONNX int8: static post-training quantisation with ONNX Runtime, calibrated on the run's images.

Static (not dynamic) quantisation: activation ranges are fitted once on training images, so
the int8 graph runs integer convolutions end to end instead of re-measuring ranges at every
call (dynamic quantisation only speeds up MatMul-heavy models, not CNNs). Weights are
quantised per output channel: one scale per filter keeps the depthwise convolutions of
EfficientNet-Lite usable (with one scale per tensor their small filters round to zero).
Activations are uint8 and weights int8 (ONNX Runtime's fast path on x86, VNNI included).

What stays in float is reported node by node with the reason, since "int8" alone hides it:
the calibrated head (Softmax over logits / T) is kept float on purpose so the probabilities a
user reads are not rounded, and ops without an int8 kernel (or with nothing to compute)
stay float because ONNX Runtime runs them so.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from modelkit.errors import ModelkitError

QUANT_FORMATS = ("qdq", "qoperator")
# QOperator: on this CPU up to twice QDQ's throughput on EfficientNet-Lite0 and on a par with
# it on ResNet-18, at the same accuracy (benchmarks/results/export_hymenoptera_cpu2.json)
DEFAULT_FORMAT = "qoperator"
# MinMax: as accurate as Percentile on the runs measured, ten times faster to calibrate
CALIBRATION_METHOD = "minmax"

# Why an op is left in float (ONNX Runtime has no int8 kernel for the rest, or they move no data).
FLOAT_REASONS = {
    "Softmax": "the calibrated probabilities head, kept float so confidences are not rounded",
    "Div": "the calibrated probabilities head (logits / temperature), kept float on purpose",
    "Shape": "shape arithmetic, no tensor data",
    "Gather": "shape arithmetic, no tensor data",
    "Unsqueeze": "shape arithmetic, no tensor data",
    "Concat": "shape arithmetic, no tensor data",
    "Reshape": "moves data without arithmetic; runs on whichever type it is given",
    "Flatten": "moves data without arithmetic; runs on whichever type it is given",
    "Identity": "moves data without arithmetic",
}
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


class QuantizeError(ModelkitError, RuntimeError):
    """Quantisation could not run (a missing package, a graph ONNX Runtime cannot calibrate)."""


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[name]


class _Reader:
    """Feeds the calibration images to ONNX Runtime a few at a time."""

    def __init__(self, images: np.ndarray, batch: int = 16):
        self._batches = iter([images[i : i + batch] for i in range(0, len(images), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._batches, None)
        return None if x is None else {"images": np.ascontiguousarray(x, dtype=np.float32)}


def quantize_onnx(
    fp32_path: Path,
    out_path: Path,
    calibration: np.ndarray,
    quant_format: str = DEFAULT_FORMAT,
    method: str = CALIBRATION_METHOD,
) -> dict[str, Any]:
    """Write the int8 model of ``fp32_path`` to ``out_path``; return how it was quantised and
    which nodes stay float, and why."""
    try:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise QuantizeError(f"int8 export needs onnxruntime's quantisation tools: {exc}") from None
    if quant_format not in QUANT_FORMATS:
        raise QuantizeError(f"quantisation format {quant_format!r} is not one of {QUANT_FORMATS}")
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quantize.") as work:
        prepared = Path(work) / "prepared.onnx"
        # constant folding, BatchNorm fused into Conv, shapes known: what calibration needs
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        head = _head_nodes(prepared)
        quantize_static(
            str(prepared),
            str(out_path),
            _Reader(calibration),
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=head,
            calibrate_method=_method(method),
            calibration_providers=["CPUExecutionProvider"],
            extra_options={"CalibTensorRangeSymmetric": False},
        )
        for leftover in Path(os.getcwd()).glob("augmented_model*.onnx"):  # old versions
            leftover.unlink(missing_ok=True)
    return {
        "format": quant_format.upper() if quant_format == "qdq" else "QOperator",
        "weights": "int8, per output channel",
        "activations": "uint8, per tensor",
        "calibration_method": method,
        "calibration_images": int(len(calibration)),
        "float_nodes": float_nodes(out_path),
    }


def _head_nodes(path: Path) -> list[str]:
    """The Div and Softmax that turn logits into calibrated probabilities (kept float)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in ("Softmax", "Div")]


def float_nodes(path: Path) -> list[dict[str, Any]]:
    """The compute nodes of a quantised graph that still run in float, grouped by op type with
    the reason and the node names."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dequantised = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantised_inputs = {i for n in graph.node if n.op_type == "QuantizeLinear" for i in n.input}
    int8: set[str] = set()  # tensors that hold int8 data (the graph lists nodes in order)
    names: dict[str, list[str]] = {}
    for node in graph.node:
        op = node.op_type
        if op in QUANT_OPS or op.startswith("Q") or op.endswith("Integer"):
            if op != "DequantizeLinear":
                int8.update(node.output)
            continue
        if node.input and node.input[0] in int8:
            int8.update(node.output)  # QOperator: pooling, reshapes on int8 data stay int8
            continue
        if any(i in dequantised for i in node.input) and all(
            o in quantised_inputs for o in node.output
        ):
            continue  # QDQ: int8 in and out, ONNX Runtime fuses it into an integer kernel
        names.setdefault(op, []).append(node.name)
    counts = Counter({op: len(v) for op, v in names.items()})
    return [
        {
            "op_type": op,
            "count": n,
            "why": FLOAT_REASONS.get(op, "ONNX Runtime has no int8 kernel for this op"),
            "nodes": names[op][:10],
        }
        for op, n in counts.most_common()
    ]
