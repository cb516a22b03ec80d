"""The backbone's forward pass for embedding a folder, run by OpenVINO on a CPU where it is
installed, and by PyTorch otherwise.

Why a second engine: embedding is nearly all of the time a new folder takes before its map can
be drawn, and PyTorch's eager CPU kernels run EfficientNet-Lite0's depthwise convolutions slowly.
On the 2-core CPU under load (load average 9-10) 1,000 photos embedded in 38 s against 158 s in
PyTorch (bf16 autocast, BatchNorm folded), counting the seconds OpenVINO takes to convert the
model (benchmarks/results/label_speed_cpu2_openvino.json); the forward pass alone ran at about
230 images/s against 20. The features agree with PyTorch's (cosine above 0.999; bf16 where the
CPU has it, as PyTorch's autocast). OpenVINO is already a requirement (the export backends);
the conversion is made once per process, and any failure to convert falls back to PyTorch, so
the fast path can never stop a folder from being embedded.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable

import numpy as np
import torch

from modelkit.data.augment import eval_views
from modelkit.data.cache import ImageCache
from modelkit.models.registry import normalisation

BATCH = 8  # images a call: a batch's activations stay in the caches (as inference_batch says)
Forward = Callable[[np.ndarray], np.ndarray]  # normalised N x 3 x S x S float32 to N x D


def _convert(body: torch.nn.Module, size: int, precision: str) -> Forward:
    """``body`` compiled by OpenVINO for the CPU; raises whatever the conversion raises."""
    import openvino as ov

    example = torch.zeros(1, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warns that torch.jit is deprecated
        # traced here without the trace check (a second forward pass): the conversion took
        # 3-8 s instead of 9-10 s on the busy 2-core CPU, and torch.export's 7-10 s
        traced = torch.jit.trace(body, example, check_trace=False)
        model = ov.convert_model(traced, example_input=example)
    model.reshape([-1, 3, size, size])  # fixed image size: the CPU plugin plans for it
    config = {"PERFORMANCE_HINT": "LATENCY"}
    config["INFERENCE_PRECISION_HINT"] = "bf16" if precision == "bf16" else "f32"
    compiled = ov.Core().compile_model(model, "CPU", config)

    lock = threading.Lock()  # one compiled model per process: its inference request is shared

    def forward(x: np.ndarray) -> np.ndarray:
        with lock:
            return np.array(compiled(x)[0], dtype=np.float32)  # a copy: never the request's buffer

    return forward


@functools.lru_cache(maxsize=2)
def bundled(arch: str, size: int, precision: str) -> Forward | None:
    """The bundled backbone converted once per process (its weights never change)."""
    from modelkit.cleaning.features import PRETRAINED, _model_for

    model, _, _, _ = _model_for(PRETRAINED, 2)
    return openvino_forward(model, arch, size, precision)


def openvino_forward(
    model: torch.nn.Module, arch: str, size: int, precision: str
) -> Forward | None:
    """``model``'s penultimate features as an OpenVINO forward, or None where OpenVINO is not
    installed or cannot take this model (the caller then runs PyTorch)."""
    from modelkit.models.folding import folded_copy
    from modelkit.training.features import headless

    try:
        import openvino  # noqa: F401
    except ImportError:
        return None
    was_training = model.training
    model.eval()
    try:
        with headless(model, arch) as body:
            return _convert(folded_copy(body), size, precision)
    except Exception:  # noqa: BLE001 - an optional fast path: any failure means PyTorch runs
        return None
    finally:
        model.train(was_training)


def features(forward: Forward, arch: str, cache: ImageCache, rows: np.ndarray, size: int):
    """N x D float32 features of the cached squares at ``rows``, seen as evaluation sees them
    (the centre crop at ``size``, the architecture's mean and std)."""
    norm = normalisation(arch)
    outs = []
    for start in range(0, len(rows), BATCH):
        x = cache.batch(rows[start : start + BATCH])
        view = eval_views(x, size, channels_last=False, norm=norm)[0]
        outs.append(forward(np.ascontiguousarray(view.numpy(), dtype=np.float32)))
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
