"""Which device and number format a run uses, decided once from what the machine offers."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from modelkit.errors import ModelkitError


class DeviceError(ModelkitError, RuntimeError):
    """The device or number format asked for is not available on this machine."""


CPU_INFERENCE_BATCH = 8  # images a forward pass on a CPU takes at a time (see inference_batch)


def inference_batch(device: torch.device, wanted: int = 64) -> int:
    """Images per forward pass when only predicting. On a CPU small batches are much faster:
    a batch's activations then stay in the caches (EfficientNet-Lite0, 224 px, bf16, 2 cores:
    225-270 images/s at 8 a batch against 133 at 64, BatchNorm folded); a GPU wants big ones."""
    return min(wanted, CPU_INFERENCE_BATCH) if device.type == "cpu" else wanted


def pick_device(preference: str = "auto") -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise DeviceError("device 'cuda' was asked for, but no CUDA GPU is visible")
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if preference == "mps" or (preference == "auto" and mps_ok):
        if not mps_ok:
            raise DeviceError("device 'mps' was asked for, but Apple's MPS is not available")
        return torch.device("mps")
    return torch.device("cpu")


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True where the CPU does bf16 matrix work natively (AVX-512 BF16 or AMX).

    Without it bf16 autocast is emulated and slower than fp32, so "auto" stays fp32 there.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def resolve_precision(preference: str, device: torch.device) -> str:
    """Measured on a 2-core AVX-512 BF16 machine: ResNet-18 training runs about 2x faster under
    bf16 autocast than fp32 (issue 4's table), so bf16 is the CPU default where it is native."""
    if preference != "auto":
        if preference == "fp16" and device.type == "cpu":
            raise DeviceError("precision fp16 is for GPUs; use bf16 or fp32 on the CPU")
        return preference
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def describe_device(device: torch.device | None = None) -> str:
    """What a person sees in the app's sidebar: the GPU's name, or the CPU."""
    device = device or pick_device()
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    bf16 = ", bf16" if cpu_has_fast_bf16() else ""
    return f"CPU ({torch.get_num_threads()} threads{bf16})"
