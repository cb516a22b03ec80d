"""Augmentation on whole batches of uint8 squares, as tensors (on the GPU when there is one).

All geometric augmentation of a sample (random resized crop, flips, rotation, shear, zoom) is one
2x3 affine matrix, so a batch costs a single ``grid_sample``; colour jitter is a per-sample 3x3
colour matrix plus a contrast blend. Evaluation is an exact centre crop, no resampling, so the
cached path gives the same pixels as the Predictor's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from modelkit.config import TrainConfig, schema
from modelkit.data.autoaugment import auto_augment
from modelkit.data.imageio import resize_size_for
from modelkit.data.views import resize_batch, tta_views
from modelkit.models.registry import IMAGENET_MEAN, IMAGENET_STD

# (mean, std) per channel; each architecture has its own (``registry.normalisation(arch)``)
Norm = tuple[tuple[float, ...], tuple[float, ...]]
IMAGENET_NORM: Norm = (IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class AugmentSettings:
    """The augmentation group of TrainConfig (same names and defaults; a test checks it)."""

    crop_scale: tuple[float, float] = (0.35, 1.0)
    hflip: bool = True
    vflip: bool = False
    rotation: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    auto_augment: str = "none"
    randaugment_magnitude: int = 9

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> AugmentSettings:
        """The config's augmentation group, as the schema declares it: each field of the group
        is a field here, except a ``<x>_min``/``<x>_max`` pair, which is the range ``<x>``."""
        values = {s.name: getattr(cfg, s.name) for s in schema() if s.group == "augmentation"}
        for pair in [n.removesuffix("_min") for n in values if n.endswith("_min")]:
            values[pair] = (values.pop(pair + "_min"), values.pop(pair + "_max"))
        return cls(**values)

    @property
    def augments(self) -> bool:
        """Whether training batches vary from draw to draw. Asked of the pipeline itself (one
        probe batch through ``train_batch`` with two generators), so a new augmentation counts
        the moment the pipeline applies it: no list of fields to keep up to date."""
        return _varies(self)


@functools.lru_cache(maxsize=64)
def _varies(settings: AugmentSettings) -> bool:
    probe = (torch.arange(16 * 12 * 12 * 3) * 37 % 251).to(torch.uint8).view(16, 12, 12, 3)
    a, b = (
        train_batch(probe, 8, settings, torch.Generator().manual_seed(seed), channels_last=False)
        for seed in (1, 2)
    )
    return not torch.equal(a, b)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) * (hi - lo) + lo


def affine_matrices(n: int, s: AugmentSettings, g: torch.Generator) -> torch.Tensor:
    """``n x 2 x 3`` matrices mapping output coordinates to source coordinates in [-1, 1]."""
    area = _uniform(n, *s.crop_scale, g)
    log_ratio = _uniform(n, math.log(3 / 4), math.log(4 / 3), g)
    # Keep both sides inside the square (w, h <= 1) by narrowing the aspect ratio rather than
    # clipping a side, which would shrink the crop below the requested area: a scale of (1, 1)
    # is then the whole square, as in torchvision's RandomResizedCrop.
    bound = -torch.log(area)
    ratio = torch.exp(torch.maximum(torch.minimum(log_ratio, bound), -bound))
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    if s.zoom > 0:
        z = _uniform(n, 1 - s.zoom, 1 + s.zoom, g)
        w, h = w / z, h / z
    cx = (_uniform(n, -1, 1, g) * (1 - w).clamp(min=0)).to(torch.float64)
    cy = (_uniform(n, -1, 1, g) * (1 - h).clamp(min=0)).to(torch.float64)
    fx = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if s.hflip else torch.ones(n)
    fy = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0) if s.vflip else torch.ones(n)
    angle = torch.deg2rad(_uniform(n, -s.rotation, s.rotation, g))
    shear = torch.tan(torch.deg2rad(_uniform(n, -s.shear, s.shear, g)))
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = w * fx.double(), h * fy.double()
    # A = R(angle) @ [[1, shear], [0, 1]] @ diag(sx, sy)
    a = cos * sx
    b = (cos * shear - sin) * sy
    c = sin * sx
    d = (sin * shear + cos) * sy
    theta = torch.stack([torch.stack([a, b, cx], 1), torch.stack([c, d, cy], 1)], 1)
    return theta.float()


_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]]
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def colour_matrices(n: int, s: AugmentSettings, g: torch.Generator) -> torch.Tensor:
    """``n x 3 x 3``: brightness, saturation and hue as one linear map per sample."""
    eye = torch.eye(3).expand(n, 3, 3)
    bright = _uniform(n, 1 - s.brightness, 1 + s.brightness, g).float()
    sat = _uniform(n, max(0.0, 1 - s.saturation), 1 + s.saturation, g).float()
    hue = (_uniform(n, -s.hue, s.hue, g) * 2 * math.pi).float()
    grey = _LUMA.expand(3, 3)  # every output channel = luma
    m_sat = sat[:, None, None] * eye + (1 - sat)[:, None, None] * grey
    cos, sin = torch.cos(hue), torch.sin(hue)
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m_hue = _YIQ_TO_RGB @ rot @ _RGB_TO_YIQ
    return bright[:, None, None] * (m_hue @ m_sat)


def normalise(x: torch.Tensor, channels_last: bool, norm: Norm = IMAGENET_NORM) -> torch.Tensor:
    mean = torch.tensor(norm[0], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(norm[1], device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def to_float(batch_u8: torch.Tensor) -> torch.Tensor:
    """uint8 ``B x H x W x 3`` to float ``B x 3 x H x W`` in [0, 1]."""
    return batch_u8.permute(0, 3, 1, 2).float().div_(255)


def eval_batch(
    batch_u8: torch.Tensor, image_size: int, channels_last: bool = True, norm: Norm = IMAGENET_NORM
) -> torch.Tensor:
    """Centre crop of ``image_size`` from cached squares, normalised: the evaluation view."""
    h, w = batch_u8.shape[1:3]
    top, left = (h - image_size) // 2, (w - image_size) // 2
    crop = batch_u8[:, top : top + image_size, left : left + image_size]
    return normalise(to_float(crop), channels_last, norm)


def eval_views(
    batch_u8: torch.Tensor,
    image_size: int,
    channels_last: bool = True,
    norm: Norm = IMAGENET_NORM,
    tta: str = "none",
) -> list[torch.Tensor]:
    """The evaluation view(s) of cached squares at ``image_size``: the squares are resized to
    ``resize_size_for(image_size)`` when they were cached at another size (FixRes evaluation
    above the training size), then centre-cropped (with ``tta``: also flipped and
    corner-cropped, ``views.tta_views``). Without either it is exactly ``eval_batch``."""
    x = resize_batch(to_float(batch_u8), resize_size_for(image_size))
    return [normalise(v, channels_last, norm) for v in tta_views(x, image_size, tta)]


def train_batch(
    batch_u8: torch.Tensor,
    image_size: int,
    settings: AugmentSettings,
    generator: torch.Generator,
    channels_last: bool = True,
    part: tuple[int, int] | None = None,
    norm: Norm = IMAGENET_NORM,
) -> torch.Tensor:
    """Randomly augmented, normalised training batch; the random draws come from ``generator``
    (a CPU generator whose state is checkpointed, so a resumed run draws the same numbers).

    ``part=(offset, total)``: this batch is rows offset.. of a global batch of ``total`` split
    over processes; the numbers are drawn for all ``total`` and this part keeps its own, so each
    image gets exactly the augmentation one process would give it. Squares cached larger than
    ``image_size`` needs (progressive resizing, FixRes) are resized down first, antialiased."""
    n = batch_u8.shape[0]
    off, total = part or (0, n)
    keep = slice(off, off + n)
    if settings.auto_augment != "none":
        batch_u8 = auto_augment(
            batch_u8, settings.auto_augment, settings.randaugment_magnitude, generator, part
        )
    x = to_float(batch_u8)
    if x.shape[-1] > resize_size_for(image_size):
        x = resize_batch(x, resize_size_for(image_size))
    theta = affine_matrices(total, settings, generator)[keep].to(x.device)
    grid = F.affine_grid(theta, [n, 3, image_size, image_size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    jitter = settings.brightness or settings.saturation or settings.hue or settings.contrast
    if jitter:
        m = colour_matrices(total, settings, generator)[keep].to(x.device)
        x = torch.einsum("nij,njhw->nihw", m, x)
        if settings.contrast:
            c = _uniform(total, max(0.0, 1 - settings.contrast), 1 + settings.contrast, generator)
            c = c[keep].float().to(x.device).view(n, 1, 1, 1)
            luma = torch.einsum("c,nchw->nhw", _LUMA.to(x.device), x)
            mean = luma.mean(dim=(1, 2)).view(n, 1, 1, 1)
            x = (x - mean) * c + mean
        x = x.clamp_(0, 1)
    return normalise(x, channels_last, norm)
