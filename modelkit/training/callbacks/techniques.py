"""Callbacks for the training techniques that act on the loop from outside it: the class
balance (before the first batch), the learning-rate warmup (around each batch) and progressive
resizing (each epoch's image size). EMA has its own module (``ema.py``)."""

from __future__ import annotations

from modelkit.data.views import progressive_sizes
from modelkit.events import Message
from modelkit.training import balance, optim
from modelkit.training.callbacks.base import TECHNIQUE, Callback, Trainer


class ClassBalance(Callback):
    """Picks the class-imbalance remedy (``balance.choose``) before the loss is built, and says
    which and why once the run has started."""

    order = TECHNIQUE

    def setup(self, trainer: Trainer) -> None:
        labels = [s.label for s in trainer.splits["train"]]
        n = len(trainer.classes)
        remedy, reason = balance.choose(labels, n, trainer.config.class_balance)
        weights = None
        if remedy != "none":
            weights = balance.class_weights(labels, n, balance.POWERS[remedy])
        trainer.sampler_weights = weights if remedy == "sampler" else None
        trainer.loss_weights = None if remedy == "sampler" else weights  # either loss weighting
        self.reason = reason

    def on_fit_start(self, trainer: Trainer) -> None:
        trainer.emit(Message(self.reason))


class Warmup(Callback):
    """Linear warmup for the per-epoch schedules: the rate of each batch in the first
    ``warmup_epochs`` is scaled by ``optim.warmup_factor``, and set back after the step, so the
    schedule (and the optimizer state in last.pt) never sees the scaled value. One-cycle has a
    warm-up of its own, which ``warmup_epochs`` lengthens instead (``optim.scheduler_kwargs``)."""

    order = TECHNIQUE

    def __init__(self) -> None:
        self.base: list[float] = []

    def on_batch_start(self, trainer: Trainer, epoch: int, batch: int) -> None:
        steps = trainer.config.warmup_epochs * trainer.steps_per_epoch
        factor = optim.warmup_factor(trainer.state.global_step, steps)
        self.base = []
        if factor < 1 and not optim.steps_per_batch(trainer.scheduler):
            self.base = [g["lr"] for g in trainer.optimizer.param_groups]
            for group, lr in zip(trainer.optimizer.param_groups, self.base, strict=True):
                group["lr"] = lr * factor

    def on_batch_end(self, trainer: Trainer, epoch: int, batch: int, loss: float) -> None:
        for group, lr in zip(trainer.optimizer.param_groups, self.base, strict=False):
            group["lr"] = lr
        self.base = []


class ProgressiveResize(Callback):
    """Sets each epoch's training size (``views.progressive_sizes``); evaluation stays at the
    full (or evaluation) size."""

    order = TECHNIQUE

    def on_fit_start(self, trainer: Trainer) -> None:
        trainer.emit(Message(f"progressive resizing: epoch sizes {self._sizes(trainer)}"))

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        # laid out again each epoch: a time budget may change the planned epochs mid-run
        sizes = self._sizes(trainer)
        trainer.train_size = sizes[min(epoch, len(sizes) - 1)]

    @staticmethod
    def _sizes(trainer: Trainer) -> list[int]:
        cfg = trainer.config
        return progressive_sizes(trainer.plan.epochs, cfg.progressive_min_size, cfg.image_size)
