"""Learning-rate range test (Leslie Smith; fastai's ``lr_find``).

Train for a short while with the learning rate growing exponentially from ``start_lr`` to
``end_lr``, record the smoothed loss, stop when it diverges, and suggest the rate where the loss
falls fastest (or a tenth of the rate at the minimum). The model's weights are restored
afterwards, so the test can run on a model that is then trained for real. The test is a
callback over the Trainer's loop (``LRFinder``), so it trains exactly as a run would.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from modelkit.config import TrainConfig
from modelkit.training.callbacks.base import Callback
from modelkit.training.errors import NonFiniteLoss, TrainingError
from modelkit.training.loop import Trainer


@dataclass
class LRFinderResult:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed (bias-corrected EMA)
    raw_losses: list[float] = field(default_factory=list)
    diverged: bool = False
    suggestion: float | None = None  # steepest descent of the smoothed loss
    min_lr_div10: float | None = None  # a tenth of the rate at the lowest smoothed loss

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def suggest(lrs: list[float], losses: list[float]) -> tuple[float | None, float | None]:
    """(steepest descent, min / 10) of a smoothed loss curve over log-spaced rates."""
    if len(lrs) < 3:
        return None, None
    y = np.asarray(losses, dtype=float)
    x = np.log10(np.asarray(lrs, dtype=float))
    lo = int(np.argmin(y))
    min_div10 = float(lrs[lo]) / 10
    skip = max(1, len(y) // 10)  # the first points are mostly noise of the EMA warm-up
    end = max(lo, skip + 2)
    grads = np.gradient(y[:end], x[:end])
    i = skip + int(np.argmin(grads[skip:end])) if end > skip else int(np.argmin(grads))
    return float(lrs[i]), min_div10


class LRFinder(Callback):
    """The range test as a callback over the normal training loop (fastai's ``LRFinder``).

    Before each batch every parameter group gets the next rate of an exponential sweep from
    ``start_lr`` to ``end_lr``; after it the loss is smoothed and recorded. The finder asks the
    loop to stop after ``steps`` batches or when the smoothed loss exceeds ``diverge`` times its
    minimum (a non-finite loss, which fails the loop, counts as diverging); the model's weights
    are put back at the end either way."""

    def __init__(
        self,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        steps: int = 100,
        beta: float = 0.98,
        diverge: float = 4.0,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.start_lr, self.end_lr, self.steps = start_lr, end_lr, steps
        self.beta, self.diverge, self.progress = beta, diverge, progress
        self.result = LRFinderResult()
        self._avg, self._best, self._i = 0.0, math.inf, 0
        self._saved: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        # on tiny data: at most 5 passes over the training images (at least 30 steps)
        self.steps = min(self.steps, max(30, 5 * trainer.steps_per_epoch))
        self._mult = (self.end_lr / self.start_lr) ** (1 / max(self.steps - 1, 1))
        self._saved = copy.deepcopy(trainer.model.state_dict())

    def on_batch_start(self, trainer: Trainer, epoch: int, batch: int) -> None:
        self._lr = self.start_lr * self._mult**self._i
        for group in trainer.optimizer.param_groups:
            group["lr"] = self._lr

    def on_batch_end(self, trainer: Trainer, epoch: int, batch: int, loss: float) -> None:
        self._i += 1
        if self.progress:
            self.progress(self._i, self.steps)
        r = self.result
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smoothed = self._avg / (1 - self.beta**self._i)
        r.lrs.append(self._lr)
        r.raw_losses.append(loss)
        r.losses.append(smoothed)
        self._best = min(self._best, smoothed)
        if self._i > 1 and smoothed > self.diverge * self._best:
            r.diverged = True
        if r.diverged or self._i >= self.steps:
            trainer.request_stop("completed")

    def on_fit_end(self, trainer: Trainer, reason: str) -> None:
        self._finish(trainer)

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        if isinstance(exc, NonFiniteLoss):
            self.result.diverged = True
            if self.progress:
                self.progress(self._i + 1, self.steps)
        self._finish(trainer)

    def _finish(self, trainer: Trainer) -> None:
        if self._saved is not None:
            trainer.model.load_state_dict(self._saved)
            trainer.optimizer.zero_grad(set_to_none=True)
        r = self.result
        r.suggestion, r.min_lr_div10 = suggest(r.lrs, r.losses)


def lr_find(
    cfg: TrainConfig,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> LRFinderResult:
    """The range test for a TrainConfig: its data (train split), model, weights and optimizer,
    trained by the Trainer with an ``LRFinder`` callback and no run folder (nothing is added to
    the runs the person sees). A two-phase config is tested in its head-only phase.

    On tiny data the test takes at most 5 passes over the training images (at least 30 steps)."""
    finder = LRFinder(start_lr, end_lr, steps, progress=progress)
    test = cfg.replace(
        epochs=max(steps, 1),  # every epoch has a batch: the finder stops the loop first
        head_epochs=0,
        freeze_backbone=cfg.freeze_backbone or bool(cfg.head_epochs),
        feature_cache=False,  # the backbone sees every augmented batch, as in training
        scheduler="none",
        warmup_epochs=0.0,  # the finder sets every step's rate itself
        progressive_resize=False,  # the rate is for the full image size
        ema=False,  # the finder reads the training loss of the live weights
        early_stopping_patience=0,
        tensorboard=False,
    )
    try:
        Trainer(test, callbacks=[finder], record=False).fit()
    except TrainingError as exc:
        if not isinstance(exc.__cause__, NonFiniteLoss):
            raise
    return finder.result
