"""What a training batch is made of, one source per phase behind one interface: decoded images
augmented on the fly, cached features of a frozen backbone (the head trains on them), or cached
maps of frozen stages (the rest of the network trains on them). The loop asks the source for a
batch and for the network's output on it, so it has one path whatever the input is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from modelkit.data.augment import AugmentSettings, train_batch
from modelkit.device import autocast
from modelkit.models import registry as models
from modelkit.training import stage_cache
from modelkit.training.features import CachedFeatures


@dataclass
class Batch:
    """One optimizer step's batch as the hooks see it. ``before_batch`` may change ``x`` and
    ``target`` (MixUp mixes both); ``after_loss`` and ``before_step`` see ``logits`` and
    ``loss``."""

    epoch: int
    index: int  # the batch's number in its epoch
    idx: np.ndarray  # this process's images: positions in the training split
    x: torch.Tensor
    y: torch.Tensor  # the labels
    target: torch.Tensor  # what the loss compares with: ``y``, or soft targets
    images: bool  # x holds images (augmentations and mixing apply), not cached outputs
    part: tuple[int, int] | None = None  # this process's share of the global batch
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None


class ImageInput:
    """Decoded images, augmented on the GPU (or CPU) as each batch is made."""

    images = True

    def __init__(self, trainer: Any):
        cfg = trainer.config
        self.augment = AugmentSettings.from_config(cfg)
        self.norm = models.normalisation(cfg.arch)

    def batch(self, trainer: Any, epoch: int, idx: np.ndarray, part: Any) -> torch.Tensor:
        rows = trainer.data.rows["train"][idx]  # the decode cache's rows of these images
        x = trainer.data.cache.batch(rows).to(trainer.device, non_blocking=True)
        return train_batch(
            x, trainer.train_size, self.augment, trainer.generator,
            trainer.config.channels_last, part, self.norm,
        )  # fmt: skip

    def forward(self, trainer: Any, x: torch.Tensor) -> torch.Tensor:
        with autocast(trainer.device, trainer.precision):
            return trainer.train_forward(x)


class FeatureInput:
    """Features of the frozen backbone, computed once per pass: the head alone trains."""

    images = False

    def __init__(self, trainer: Any):
        self.head: nn.Module = models.head_module(trainer.model, trainer.config.arch)

    def batch(self, trainer: Any, epoch: int, idx: np.ndarray, part: Any) -> torch.Tensor:
        feats = trainer.features.train(epoch)
        return feats[torch.from_numpy(idx).to(feats.device)]

    def forward(self, trainer: Any, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class StageMapInput:
    """Outputs of the frozen stages, computed once per pass: the rest of the network trains."""

    images = False

    def __init__(self, trainer: Any):
        cfg = trainer.config
        self.rest = stage_cache.rest_of(trainer.model, cfg.arch, cfg.frozen_stages)

    def batch(self, trainer: Any, epoch: int, idx: np.ndarray, part: Any) -> torch.Tensor:
        maps = trainer.stage_cache.train(epoch)
        return stage_cache.gather(maps, idx, trainer.config.channels_last)

    def forward(self, trainer: Any, x: torch.Tensor) -> torch.Tensor:
        with autocast(trainer.device, trainer.precision):
            return self.rest(x)


InputSource = ImageInput | FeatureInput | StageMapInput


def build_caches(trainer: Any) -> None:
    """The frozen parts' outputs for the phase under way, built in this one place: the frozen
    stages' maps first (the head's features may come from them, and fine-tuning keeps them),
    then the frozen backbone's features, which are dropped once the backbone trains."""
    from modelkit.training import setup  # late: setup reads the trainer's view of callbacks

    if trainer.stage_cache is None:
        trainer.stage_cache = stage_cache.cache_stages(trainer)
    trainer.features = setup.cache_features(trainer)


def epoch_cache(trainer: Any) -> CachedFeatures | None:
    """The cached outputs this epoch's batches come from (the head's features first, then the
    frozen stages' maps), or None when they come from the images."""
    return trainer.features if trainer.features is not None else trainer.stage_cache


def input_source(trainer: Any) -> InputSource:
    """The source of this epoch's batches: the phase's cache when it has one, else images."""
    cache = epoch_cache(trainer)
    if cache is None:
        return ImageInput(trainer)
    return FeatureInput(trainer) if cache is trainer.features else StageMapInput(trainer)
