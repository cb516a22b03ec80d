"""Image sizes other than the cached one, and the views test-time augmentation averages.

The decode cache holds every image once, as a square of ``resize_size_for(largest size)``; a
smaller training size (progressive resizing) or evaluation size (FixRes) is that batch resized,
so one cache serves every size. Evaluation at ``size`` resizes the square to
``resize_size_for(size)`` when it differs, then crops the centre, which is what the Predictor
does from the original photo.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_batch(x: torch.Tensor, side: int) -> torch.Tensor:
    """Float ``B x 3 x H x W`` resized to ``side`` (antialiased); unchanged when it is already."""
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)


def tta_view_count(tta: str) -> int:
    """How many views ``tta_views`` makes: what an evaluation with TTA costs against one
    without."""
    return {"flip": 2, "flip_crops": 10}.get(tta, 1)


def tta_views(x: torch.Tensor, size: int, tta: str) -> list[torch.Tensor]:
    """The views of a float square batch ``B x 3 x S x S`` whose logits are averaged: the
    centre crop of ``size``; ``flip`` adds its mirror image; ``flip_crops`` adds the four
    corner crops and their mirror images too (ten views, torchvision's TenCrop)."""
    s = x.shape[-1]
    top = (s - size) // 2
    centre = x[..., top : top + size, top : top + size]
    views = [centre]
    if tta in ("flip", "flip_crops"):
        views.append(centre.flip(-1))
    if tta == "flip_crops":
        for r, c in ((0, 0), (0, s - size), (s - size, 0), (s - size, s - size)):
            crop = x[..., r : r + size, c : c + size]
            views += [crop, crop.flip(-1)]
    return views


def progressive_sizes(epochs: int, min_size: int, image_size: int) -> list[int]:
    """The training size of each epoch: from ``min_size`` up to ``image_size`` in steps of 16
    (fastai's progressive resizing), reaching ``image_size`` for the last quarter of the epochs
    (at least the last one), so the final weights are tuned at the size they are evaluated at."""
    full = max(1, round(epochs * 0.25))
    growing = epochs - full
    lo = min(min_size, image_size)
    sizes = []
    for e in range(growing):
        size = lo + (image_size - lo) * e / max(growing, 1)
        sizes.append(max(16, min(image_size, int(round(size / 16)) * 16)))
    return sizes + [image_size] * full
