"""TrivialAugmentWide and RandAugment on a batch of uint8 images, a different draw per image.

torchvision's ``transforms.v2`` presets apply one operation to a whole batched tensor; here
every image gets its own operation and strength, as with per-sample loading, and the draws come
from the run's checkpointed generator (so a resumed run augments exactly as before). The
operations themselves are torchvision's (``_AUGMENTATION_SPACE`` and the preset's own apply
function), run once per group of images that drew the same operation and strength, on whatever
device the batch is on.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

_BINS = 31  # torchvision's number of magnitude bins
_PRESETS = {"trivialaugment": v2.TrivialAugmentWide, "randaugment": v2.RandAugment}


def _ops(mode: str, h: int, w: int) -> tuple[object, list[tuple[str, list[float], bool]]]:
    """The preset and its (operation, strength per bin, signed) list for ``h x w`` images
    (RandAugment's translations are a share of the image's side)."""
    preset = _PRESETS[mode](num_magnitude_bins=_BINS)
    ops = []
    for name, (magnitudes_fn, signed) in preset._AUGMENTATION_SPACE.items():
        values = magnitudes_fn(_BINS, h, w)
        ops.append((name, [0.0] * _BINS if values is None else values.tolist(), signed))
    return preset, ops


def auto_augment(
    batch_u8: torch.Tensor,
    mode: str,
    magnitude: int,
    generator: torch.Generator,
    part: tuple[int, int] | None = None,
) -> torch.Tensor:
    """``B x H x W x 3`` uint8 in, the same shape and dtype out. ``mode``: trivialaugment (one
    operation at a random strength per image) or randaugment (two operations at ``magnitude``).
    ``part`` as in ``train_batch``: draws are made for the global batch, this part keeps its own.
    """
    if mode == "none":
        return batch_u8
    preset, ops = _ops(mode, *batch_u8.shape[1:3])
    n = batch_u8.shape[0]
    off, total = part or (0, n)
    rounds = 2 if mode == "randaugment" else 1
    x = batch_u8.permute(0, 3, 1, 2)  # B x 3 x H x W, what torchvision's functions take
    for _ in range(rounds):
        op = torch.randint(len(ops), (total,), generator=generator)[off : off + n]
        if mode == "randaugment":
            level = torch.full((total,), min(magnitude, _BINS - 1))[off : off + n]
        else:
            level = torch.randint(_BINS, (total,), generator=generator)[off : off + n]
        sign = torch.where(torch.rand(total, generator=generator) < 0.5, -1.0, 1.0)[off : off + n]
        out = x.clone()
        for key in torch.unique(op * 2 * _BINS + level * 2 + (sign > 0)).tolist():
            o, rest = divmod(key, 2 * _BINS)
            lv, positive = divmod(rest, 2)
            name, values, signed = ops[o]
            value = values[lv] * (1.0 if positive or not signed else -1.0)
            rows = ((op == o) & (level == lv) & ((sign > 0) == bool(positive))).nonzero()[:, 0]
            rows = rows.to(x.device)
            out[rows] = preset._apply_image_or_video_transform(
                x[rows], name, value, interpolation=v2.InterpolationMode.NEAREST, fill=preset._fill
            )
        x = out
    return x.permute(0, 2, 3, 1).contiguous()
