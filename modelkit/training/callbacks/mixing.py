"""MixUp and CutMix as a callback (fastai's ``MixHandler``): each batch of images and its targets
are mixed after augmentation, before the forward pass; cached features or maps are not mixed."""

from __future__ import annotations

from typing import Any

from modelkit.data.mixing import MixSettings, mix_batch
from modelkit.training.callbacks.base import TECHNIQUE, Callback, Trainer


class MixHandler(Callback):
    order = TECHNIQUE

    def __init__(self, settings: MixSettings):
        self.settings = settings

    def before_batch(self, trainer: Trainer, batch: Any) -> None:
        if batch.images:
            n = len(trainer.classes)
            g, part = trainer.generator, batch.part
            batch.x, batch.target = mix_batch(batch.x, batch.y, n, self.settings, g, part)
