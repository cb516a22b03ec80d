"""What a race run keeps of its best epoch: its held-out probabilities, so the race can say
whether averaging its finalists would beat its winner without training them again."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelkit.training.callbacks.base import CALLER, Callback


class KeepBestHeldOut(Callback):
    """The held-out probabilities of the epoch with the best held-out accuracy, from the
    logits the epoch's validation pass computed (the race's held-out images are its val)."""

    order = CALLER  # after the loop's own callbacks: the epoch's metrics are final

    def __init__(self) -> None:
        self.best = -1.0
        self.probs: np.ndarray | None = None
        self.labels: np.ndarray | None = None

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        acc = metrics.get("val_acc")
        if acc is None or acc <= self.best:
            return
        self.best = float(acc)
        logits, labels = trainer.last_val_logits
        self.probs = logits.float().softmax(-1).cpu().numpy()
        self.labels = labels.cpu().numpy()
