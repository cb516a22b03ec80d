"""Cached backbone features for head-only training on a frozen backbone.

With the backbone frozen (and its BatchNorm statistics fixed), the backbone's output for an image
never changes, so computing it every epoch is waste: it is computed once per image, or once per
augmentation pass when augmentation is on, and the head trains on those vectors. An epoch then
costs a few matrix multiplications instead of a full forward pass over every image.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from modelkit.data.augment import AugmentSettings, Norm, eval_views, train_batch
from modelkit.data.cache import ImageCache
from modelkit.device import autocast, inference_batch
from modelkit.models.folding import folded_copy
from modelkit.models.registry import ARCHITECTURES, normalisation


@contextlib.contextmanager
def headless(model: nn.Module, arch: str) -> Iterator[nn.Module]:
    """The model with its head swapped for Identity: its output is the penultimate features."""
    attr = ARCHITECTURES[arch].head_attr
    head = getattr(model, attr)
    setattr(model, attr, nn.Identity())
    try:
        yield model
    finally:
        setattr(model, attr, head)


@torch.no_grad()
def backbone_features(
    model: nn.Module,
    arch: str,
    cache: ImageCache,
    rows: np.ndarray,
    image_size: int,
    device: torch.device,
    precision: str,
    channels_last: bool = True,
    batch_size: int = 64,
    view: Callable[[torch.Tensor], torch.Tensor] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], None] | None = None,
    tta: str = "",
) -> torch.Tensor | None:
    """Float32 features (N x D, on ``device``) of the cached images at ``rows``.

    With ``view`` (uint8 batch to normalised batch: a training pass's view, ``pass_view``) the
    images are seen through it; without it they get the evaluation centre crop; given ``tta``
    (the config's: "none", "flip", ...) the evaluation views of ``eval_views`` at
    ``image_size``, stacked (V x N x D): evaluation averages their logits.
    Returns None if ``should_stop`` turned true on the way.
    The backbone runs as a copy with its BatchNorm folded into the convolutions (it is frozen,
    so nothing is lost, and the pass is a third faster on a CPU).
    """
    was_training = model.training
    model.eval()
    norm = normalisation(arch)
    outs = []
    try:
        with headless(model, arch) as headless_model:
            body = folded_copy(headless_model)
            step = inference_batch(device, batch_size)
            for start in range(0, len(rows), step):
                if should_stop():
                    return None
                x = cache.batch(rows[start : start + step]).to(device, non_blocking=True)
                if view is None:  # resized first when cached for a larger eval size
                    views = eval_views(x, image_size, channels_last, norm, tta or "none")
                else:
                    views = [view(x)]
                with autocast(device, precision):
                    outs.append(torch.stack([body(v).float() for v in views]))
                if progress:
                    progress(len(x))
    finally:
        model.train(was_training)
    feats = torch.cat(outs, 1) if outs else torch.zeros(1, 0, 0, device=device)
    return feats if tta else feats[0]


def pass_view(
    x: torch.Tensor,
    k: int,
    image_size: int,
    settings: AugmentSettings,
    generator: torch.Generator,
    channels_last: bool,
    norm: Norm,
) -> torch.Tensor:
    """Pass ``k`` of a cached training set's views of the uint8 batch ``x``: with augmentation
    the centre crop first, then (with flips) its mirror image, then random augmented views.

    Each pass is computed once and reused every few epochs, so one random crop of an image is no
    augmentation at all, while the evaluation view and its mirror are the two views a frozen
    network part is best trained on (random crops alone scored lower:
    benchmarks/results/transfer_caltech101_lite0_cpu2.json). Without augmentation it is exactly
    what the full loop would feed the network."""
    if settings.augments and (k == 0 or (k == 1 and settings.hflip)):
        centre = eval_views(x, image_size, channels_last, norm)[0]
        return centre.flip(-1) if k == 1 else centre
    return train_batch(x, image_size, settings, generator, channels_last, norm=norm)


class CachedFeatures:
    """A frozen network part's outputs (the backbone's features, or the frozen stages' maps):
    per evaluation split its views' outputs (V x N x ...: the centre crop, and the test-time
    views when the run has TTA), and the training split's augmentation passes, used in turn from
    ``first_epoch`` on, pass k computed (in order) when an epoch first needs it.
    ``compute_pass(k, epoch)`` computes pass k for the epoch that first needs it; ``spent`` is
    told the seconds each took (work done once inside an epoch, which the time budget must not
    take for what every epoch costs)."""

    def __init__(
        self,
        splits: dict[str, torch.Tensor],
        passes: int,
        compute_pass: Callable[[int, int], torch.Tensor],
        first_epoch: int = 0,
        spent: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.splits, self.passes, self._compute_pass = splits, passes, compute_pass
        self.first_epoch, self._spent = first_epoch, spent
        self.train_passes: list[torch.Tensor] = []
        self.pass_seconds = 0.0  # what the latest pass took: what the next is expected to take

    def train(self, epoch: int) -> torch.Tensor:
        """The training outputs epoch ``epoch`` trains on (pass ``(epoch - first_epoch) %
        passes``)."""
        return self.train_pass((epoch - self.first_epoch) % self.passes, epoch)

    def train_pass(self, k: int, epoch: int) -> torch.Tensor:
        """Training pass ``k``, computed (after the passes before it) for ``epoch`` if need be."""
        while len(self.train_passes) <= k:  # pass k continues the generator of pass k - 1
            started = time.perf_counter()
            self.train_passes.append(self._compute_pass(len(self.train_passes), epoch))
            self.pass_seconds = time.perf_counter() - started
            self._spent(self.pass_seconds)
        return self.train_passes[k]

    def pending(self, first: int, end: int, passes: int | None = None) -> int:
        """How many passes epochs ``first``..``end - 1`` need that are not computed yet (with
        ``passes`` in turn instead of the cache's): a time budget counts them, as a pass costs
        many cached epochs."""
        if end <= first:
            return 0
        needed = min(end - self.first_epoch, passes or self.passes)
        return max(0, needed - len(self.train_passes))
