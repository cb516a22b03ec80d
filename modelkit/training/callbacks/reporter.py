"""The adapter between callbacks and events: it turns the loop's hooks into the typed events
(``modelkit.events``) that listeners hear, the run folder's recorder, TensorBoard, the CLI
progress and the app's live view among them. Listeners stay plain functions of an event."""

from __future__ import annotations

import time
import traceback
from typing import Any

from modelkit.events import BatchEnd, EpochEnd, Failed, Finished, RunStarted, Stopped
from modelkit.training.callbacks.base import EVENTS, Callback, Trainer
from modelkit.training.errors import explain_error

FINISHED = ("completed", "early_stopping", "time_budget")  # reasons of a finished run


class EventReporter(Callback):
    order = EVENTS

    def setup(self, trainer: Trainer) -> None:
        n_train = len(trainer.splits["train"])
        trainer.emit(
            RunStarted(
                run_dir=str(trainer.run_dir),
                config=trainer.config.to_dict(),
                classes=list(trainer.classes),
                device=str(trainer.device),
                precision=trainer.precision,
                num_train=n_train,
                num_val=len(trainer.splits.get("val", [])),
                start_epoch=trainer.state.epoch,
                steps_per_epoch=trainer.steps_for(n_train),
                start_step=trainer.state.global_step,
            )
        )

    def on_batch_end(self, trainer: Trainer, epoch: int, batch: int, loss: float) -> None:
        elapsed = time.perf_counter() - trainer.epoch_started
        trainer.emit(
            BatchEnd(
                epoch,
                batch,
                trainer.steps_per_epoch,
                loss,
                trainer.lr,
                trainer.epoch_seen / elapsed if elapsed > 0 else 0.0,
                trainer.state.global_step,
            )
        )

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        trainer.emit(EpochEnd(epoch, trainer.plan.epochs, metrics, trainer.state.improved))

    def on_fit_end(self, trainer: Trainer, reason: str) -> None:
        run_dir, state = str(trainer.run_dir), trainer.state
        if reason in FINISHED:
            trainer.emit(Finished(run_dir, state.best_metrics, state.last_metrics, reason))
        else:  # the final word of a stopped run reaches every listener, even past a broken one
            epoch, batch = trainer.stopped_at
            trainer.emit(Stopped(run_dir, epoch, batch, reason), quiet=True)

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        failed = Failed(str(trainer.run_dir), explain_error(exc), traceback.format_exc())
        trainer.emit(failed, quiet=True)
