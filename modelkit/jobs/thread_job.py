"""Background training in a thread: the job kind the app uses on one device.

The thread makes no UI calls, it only feeds a ``LiveView`` through the Trainer's events, and any
page (or browser tab) can look at it.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from modelkit.config import TrainConfig
from modelkit.events import (
    UNTRAINED,
    BatchEnd,
    CacheProgress,
    EpochEnd,
    Event,
    Failed,
    Finished,
    Message,
    Planned,
    RunStarted,
    StepProgress,
    Stopped,
)
from modelkit.jobs.live_view import LiveView
from modelkit.recipes.notes import notes_callback
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.members import is_ensemble
from modelkit.runs.metrics_log import recorded_best
from modelkit.training.kept_maps import keeping_stage_maps
from modelkit.training.loop import Trainer, TrainResult

if TYPE_CHECKING:
    from modelkit.recipes.measured import Measured


def show_step(view: LiveView, event: StepProgress) -> None:
    """The step the view names: the event's, or none once it ended."""
    ended = event.status == "end"
    view.step = "" if ended else event.name
    view.step_done, view.step_total, view.step_unit = event.done, event.total, event.unit
    view.step_elapsed, view.step_heard = event.elapsed, time.time()


class TrainingJob:
    """One training run in a daemon thread."""

    MAX_BATCH_POINTS = 5000

    def __init__(
        self,
        config: TrainConfig | None = None,
        resume_dir: str | Path | None = None,
        notes: list[str] | None = None,
        measure: Callable[[], Measured] | None = None,
    ):
        self.lock = threading.Lock()
        self.view = LiveView(epochs=config.epochs if config else 0)
        self.stop_event = threading.Event()
        # ``measure``: auto measures and races in the thread first (recipes.measured), and
        # what it measured may add a second model (recipes.second_model)
        self.measure, self.search = measure, None
        self.held_finish: Finished | None = None  # the winner's end, while a second may follow
        self.trainer: Trainer | None = None
        if resume_dir is not None:
            self.trainer = Trainer.resume(resume_dir, [self._on_event])
            self.view.run_dir = str(resume_dir)
        elif measure is None:
            assert config is not None
            # notes: what a recipe chose and why, for the run's log
            callbacks = [notes_callback(notes)] if notes else []
            self.trainer = Trainer(config, [self._on_event], callbacks=callbacks)
        self.config = self.trainer.config if self.trainer else config
        self.view.epochs = self.config.epochs
        # The thread runs in a copy of the creator's context, so an app's confine_to (its allowed
        # roots) applies to this run's dataset scan too.
        self.thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._main,),
            name="modelkit-training",
            daemon=True,
        )

    @property
    def name(self) -> str:
        return Path(self.view.run_dir).name if self.view.run_dir else self.config.arch

    def start(self) -> TrainingJob:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def snapshot(self) -> LiveView:
        """A copy of the live view that a page can draw without holding the lock."""
        with self.lock:
            return self.view.copy()

    def _main(self) -> None:
        try:
            if self.trainer is None:
                self._measure()
            fit_started = time.time()  # the run's budget counts from here (decoding included)
            with keeping_stage_maps(bool(self.search)):
                result = self.trainer.fit(self.stop_event)  # its maps serve its next runs
                if self.search is not None:
                    self._second_model(result, time.time() - fit_started)
        except Exception as exc:  # noqa: BLE001 - shown in the live view, never re-raised
            with self.lock:
                if self.view.state == "failed":
                    return  # already reported through the Failed event
                # errors before the run folder exists (bad data, unwritable runs folder)
                self.view.state, self.view.error = "failed", str(exc).replace("\n", "; ")
                self.view.log.append(f"error: {self.view.error}")
                self.view.ended = time.time()

    def _measure(self) -> None:
        """auto's probe and race, before the run exists: the view says so, then the measured
        config trains with auto's notes and auto_search.json."""
        with self.lock:
            self.view.state, self.view.step = "decoding", "Measuring backbones and racing paths"
            self.view.log.append("auto: measuring the backbones and racing the paths first")
        config, notes, self.search = self.measure()
        with self.lock:
            self.view.step = ""
        self.config = config
        self.trainer = Trainer(
            config, [self._on_event], callbacks=[notes_callback(notes, self.search)]
        )

    def _second_model(self, result: TrainResult, spent: float) -> None:
        """The winner trained longer and the race's runner-up, where they were asked for and
        time is left (recipes.second_model); the view follows each run, then shows the run the
        person gets (finished, whatever became of the others)."""
        from modelkit.recipes.second_model import spend_what_is_left

        run = result.run_dir
        if result.state == "finished" and not self.stop_event.is_set():
            run = spend_what_is_left(
                result.run_dir, self.config, self.search.get("race"), spent, self.stop_event,
                [self._on_event], say=self._say,
            )  # fmt: skip
        with self.lock:
            if self.held_finish is not None:
                v = self.view
                v.run_dir, v.state, v.error, v.ended = str(run), "finished", "", time.time()
                if run != result.run_dir:  # the ensemble's best, or the longer run's
                    v.best = recorded_best(run)
                    ensemble = is_ensemble(read_json(RunFolder(run).config, {}))
                    what = "the ensemble run" if ensemble else "run"
                    v.log.append(f"the model is {what} {run.name}")
            self.held_finish = None

    def _say(self, line: str) -> None:
        with self.lock:
            self.view.log.append(line)

    def _on_event(self, event: Event) -> None:
        with self.lock:
            v = self.view
            if isinstance(event, RunStarted):
                if self.held_finish is not None:  # auto's second model: its own curves
                    v.epoch_metrics, v.batch_losses, v.best, v.last = [], [], {}, {}
                v.state, v.run_dir = "decoding", event.run_dir
                v.device, v.precision = event.device, event.precision
                v.num_train, v.num_val = event.num_train, event.num_val
                v.batches, v.epoch = event.steps_per_epoch, event.start_epoch
                v.start_epoch = event.start_epoch
                v.log.append(
                    f"run {Path(event.run_dir).name} on {event.device} ({event.precision})"
                )
            elif isinstance(event, StepProgress):
                if v.state == "starting":
                    v.state = "decoding"  # before the first batch: getting the data ready
                if isinstance(event, CacheProgress):
                    v.cache_done, v.cache_total = event.done, event.total
                show_step(v, event)
            elif isinstance(event, BatchEnd):
                if v.state == "decoding":
                    v.state, v.started = "running", time.time()
                    if event.epoch > v.start_epoch:
                        v.start_epoch = event.epoch
                v.epoch, v.batch, v.batches = event.epoch, event.batch + 1, event.batches
                v.lr, v.images_per_second = event.lr, event.images_per_second
                v.batch_losses.append((event.global_step, event.loss))
                if len(v.batch_losses) > self.MAX_BATCH_POINTS:
                    v.batch_losses = v.batch_losses[::2]
            elif isinstance(event, EpochEnd):
                row = {"epoch": event.epoch + 1, **event.metrics}
                v.epoch_metrics.append(row)
                v.last = row
                if event.is_best:
                    v.best = row
                parts = [
                    f"{k}={row[k]:.4f}" for k in ("train_loss", "val_loss", "val_acc") if k in row
                ]
                v.log.append(f"epoch {event.epoch + 1}/{event.epochs}: " + ", ".join(parts))
            elif isinstance(event, Planned):
                v.epochs, v.plan = event.epochs, event.summary
            elif isinstance(event, Message):
                prefix = "warning: " if event.level == "warning" else ""
                v.log.append(prefix + event.text)
            elif isinstance(event, Finished):
                v.step = ""
                v.best, v.last = event.best, event.last
                v.log.append(f"finished ({event.reason})")
                if self.search is not None:  # a second model may follow: not over yet
                    self.held_finish = event
                else:
                    v.state, v.ended = "finished", time.time()
            elif isinstance(event, Stopped):
                v.step = ""
                v.state, v.stop_reason, v.ended = "stopped", event.reason, time.time()
                if event.reason == UNTRAINED:
                    v.log.append("ended before the first epoch: no model was trained")
                else:
                    what = "pruned after" if event.reason == "pruned" else "stopped in"
                    v.log.append(f"{what} epoch {event.epoch + 1}")
            elif isinstance(event, Failed):
                v.step = ""
                v.state, v.error, v.ended = "failed", event.error, time.time()
                v.log.append(f"error: {event.error}")
