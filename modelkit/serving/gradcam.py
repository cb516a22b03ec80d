"""Grad-CAM: which part of the image made the model answer what it did (Selvaraju et al. 2017).

A forward hook on the architecture's last convolutional stage (``Architecture.cam_layer`` in the
registry; each member's, for an ensemble: ``cam_stages``) keeps its activations A and a tensor
hook their gradient dY/dA for the chosen class's logit Y. Each channel is weighted by its mean
gradient, the weighted sum goes through ReLU (only evidence *for* the class) and is upsampled to
the input size and scaled to 0..1 per image. The maps are computed in fp32 from whatever the
model ran in (bf16 autocast, channels_last).

Grad-CAM++ (Chattopadhay et al. 2018) weights channels by positive gradients with per-pixel
coefficients; it is available as ``method="gradcam++"`` and measured against Grad-CAM in the tests.

``overlay`` colours a map and blends it over the image with numpy alone, so the CLI writes the
same pictures the app shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from modelkit.errors import ModelkitError
from modelkit.models import registry as models
from modelkit.models.ensemble import Ensemble

METHODS = ("gradcam", "gradcam++")


class GradCamError(ModelkitError, ValueError):
    """Grad-CAM was asked for something it cannot do (unknown class, no PyTorch model)."""


def grad_cam(
    model: nn.Module,
    arch: str,
    x: torch.Tensor,
    targets: Sequence[int | None] | None = None,
    method: str = "gradcam",
    autocast_ctx=None,
) -> tuple[torch.Tensor, np.ndarray]:
    """(float logits on the CPU, maps N x H x W in 0..1) for a normalised batch ``x``.

    ``targets[i]`` is the class index to explain for image i; None (or no list) means its top
    class. ``autocast_ctx`` is the precision context the model runs in (bf16, fp16) or None."""
    if method not in METHODS:
        raise GradCamError(f"Grad-CAM method {method!r} is not one of {METHODS}")
    stages = cam_stages(model, arch)
    saved: list[dict[str, torch.Tensor]] = [{} for _ in stages]

    def keeper(slot: dict[str, torch.Tensor]):
        def keep(_module: nn.Module, _inputs: object, out: torch.Tensor) -> None:
            slot["act"] = out
            out.register_hook(lambda grad: slot.__setitem__("grad", grad))

        return keep

    handles = [stage.register_forward_hook(keeper(slot)) for stage, slot in zip(stages, saved)]
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # a graph even when the weights are frozen
            if autocast_ctx is not None:
                with autocast_ctx:
                    logits = model(x)
            else:
                logits = model(x)
            logits = logits.float()
            chosen = [
                int(logits[i].argmax()) if targets is None or targets[i] is None else targets[i]
                for i in range(len(x))
            ]
            if any(not 0 <= c < logits.shape[1] for c in chosen):
                raise GradCamError(f"class index out of range 0..{logits.shape[1] - 1}")
            score = logits[torch.arange(len(x)), torch.tensor(chosen)].sum()
            model.zero_grad(set_to_none=True)
            score.backward()
    finally:
        for handle in handles:
            handle.remove()
    model.zero_grad(set_to_none=True)
    maps = torch.stack([_map(slot, method, x.shape[-2:]) for slot in saved]).mean(0)
    return logits.detach().cpu(), _scaled(maps).cpu().numpy()


def cam_stages(model: nn.Module, arch: str) -> list[nn.Module]:
    """Where Grad-CAM hooks: the architecture's last convolutional stage; in an ensemble each
    member's own, their maps (each scaled to 0..1 at the input size) averaged, since members'
    maps differ in resolution and scale and each member counts equally in the logits."""
    if isinstance(model, Ensemble):
        return [models.cam_module(m, a) for m, a in zip(model.members, model.archs, strict=True)]
    return [models.cam_module(model, arch)]


def _map(slot: dict[str, torch.Tensor], method: str, size: torch.Size) -> torch.Tensor:
    """One stage's map at the input ``size``, 0..1 per image."""
    act, grad = slot["act"].detach().float(), slot["grad"].detach().float()
    maps = _weigh(act, grad, method)[:, None]
    maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    return _scaled(maps[:, 0])


def _scaled(maps: torch.Tensor) -> torch.Tensor:
    peak = maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return (maps / peak).clamp(0, 1)


def _weigh(act: torch.Tensor, grad: torch.Tensor, method: str) -> torch.Tensor:
    """The class activation map before upsampling: N x h x w, non-negative."""
    if method == "gradcam":
        weights = grad.mean(dim=(2, 3), keepdim=True)
    else:  # Grad-CAM++: alpha = g^2 / (2 g^2 + sum(A) g^3), weights = sum(alpha * relu(g))
        g2, g3 = grad.pow(2), grad.pow(3)
        denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        weights = (alpha * F.relu(grad)).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * act).sum(dim=1))


# -- rendering ------------------------------------------------------------------------------------
# A perceptually ordered blue -> cyan -> green -> yellow -> red ramp ("jet"-like, as Grad-CAM
# papers draw it), interpolated from anchors so no plotting library is needed.
_ANCHORS = np.array(
    [[0, 0, 128], [0, 0, 255], [0, 255, 255], [0, 255, 0], [255, 255, 0], [255, 0, 0], [128, 0, 0]],
    dtype=np.float32,
)


def colourise(cam: np.ndarray) -> np.ndarray:
    """H x W map in 0..1 -> H x W x 3 uint8 colours (low: blue, high: red)."""
    pos = np.clip(np.nan_to_num(cam), 0, 1) * (len(_ANCHORS) - 1)
    low = np.floor(pos).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (pos - low)[..., None]
    rgb = _ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac
    return rgb.round().astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """The coloured map blended over ``image`` (H x W x 3 uint8): 0 shows the image alone, 1 the
    map alone. A map of another size is resized to the image's."""
    opacity = float(np.clip(opacity, 0.0, 1.0))
    image = np.asarray(image, dtype=np.uint8)
    if cam.shape != image.shape[:2]:
        resized = Image.fromarray((np.clip(cam, 0, 1) * 255).astype(np.uint8))
        cam = np.asarray(resized.resize(image.shape[1::-1], Image.BILINEAR), np.float32) / 255
    blended = (1 - opacity) * image.astype(np.float32) + opacity * colourise(cam)
    return blended.round().clip(0, 255).astype(np.uint8)


def peak(cam: np.ndarray) -> tuple[int, int]:
    """(row, column) of the map's maximum: where the model looked hardest."""
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return int(row), int(col)
