"""The Optuna pruner as a training callback: it reports val_acc to the trial after every epoch
and, when the pruner says the trial is hopeless, asks the loop to stop with the reason
``pruned``. The run then ends ``pruned`` (its status.json and the trial say so, with the epoch),
not ``stopped``: nobody pressed Stop."""

from __future__ import annotations

from typing import Any

import optuna

from modelkit.training.callbacks.base import Callback, Trainer


class TrialPruner(Callback):
    main_only = True  # the trial lives in this process

    def __init__(self, trial: optuna.Trial):
        self.trial = trial
        self.run_dir = ""
        self.pruned_epoch: int | None = None  # 1-based epoch after which the trial was pruned

    def setup(self, trainer: Trainer) -> None:
        self.run_dir = str(trainer.run_dir)
        self.trial.set_user_attr("run_dir", self.run_dir)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        value = metrics.get("val_acc")
        if value is None:
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned_epoch = epoch + 1
            trainer.request_stop("pruned")
