"""Early stopping: end the run when the watched metric has not improved for ``patience`` epochs.

The loop keeps the best value and the count of epochs without improvement in its state (they
are saved in last.pt, so a resumed run counts on where it stopped); this callback reads the count
and asks the loop to stop. A two-phase run never stops in its head-only phase, and the phase
switch gives the fine-tuning phase its full patience.
"""

from __future__ import annotations

from typing import Any

from modelkit.events import Message
from modelkit.training.callbacks.base import EARLY_STOP, Callback, Trainer


class EarlyStopping(Callback):
    order = EARLY_STOP

    def __init__(self, patience: int):
        self.patience = patience  # 0 turns it off

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        bad = trainer.state.bad_epochs
        if not self.patience or trainer.phase == 1 or bad < self.patience:
            return
        trainer.emit(Message(f"early stopping: {trainer.monitor} did not improve for {bad} epochs"))
        trainer.request_stop("early_stopping")
