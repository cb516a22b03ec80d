"""Background training for the app: one job per process, in a thread, watched through events.

The registry is what the Streamlit pages read: the thread makes no UI calls, it only feeds a
``LiveView`` through the Trainer's events, and any page (or browser tab) can look at it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelkit.config import TrainConfig
from modelkit.engine import Trainer
from modelkit.events import (
    BatchEnd,
    CacheProgress,
    EpochEnd,
    Event,
    Failed,
    Finished,
    Message,
    RunStarted,
    Stopped,
)


class JobBusyError(RuntimeError):
    """A second launch while a job runs; the message names the running job."""


@dataclass
class LiveView:
    """What the live training view draws; updated by events, read by pages under the lock."""

    state: str = "starting"  # starting | decoding | running | finished | stopped | failed
    run_dir: str = ""
    epochs: int = 0
    epoch: int = 0  # 0-based epoch in progress
    batch: int = 0
    batches: int = 0
    cache_done: int = 0
    cache_total: int = 0
    images_per_second: float = 0.0
    lr: float = 0.0
    batch_losses: list[tuple[int, float]] = field(default_factory=list)  # (global step, loss)
    epoch_metrics: list[dict[str, Any]] = field(default_factory=list)
    log: deque = field(default_factory=lambda: deque(maxlen=500))
    error: str = ""
    best: dict[str, Any] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    ended: float | None = None
    device: str = ""
    precision: str = ""
    num_train: int = 0
    num_val: int = 0
    start_epoch: int = 0

    @property
    def fraction(self) -> float:
        """Share of the run's batches done, for the progress bar."""
        if not self.epochs or not self.batches:
            return 0.0
        done = (self.epoch - self.start_epoch) * self.batches + self.batch
        total = (self.epochs - self.start_epoch) * self.batches
        return min(1.0, done / total) if total else 0.0

    @property
    def eta_seconds(self) -> float | None:
        f = self.fraction
        if self.state != "running" or f <= 0.01:
            return None
        elapsed = time.time() - self.started
        return elapsed * (1 - f) / f

    @property
    def active(self) -> bool:
        return self.state in ("starting", "decoding", "running")

    def copy(self) -> LiveView:
        """A copy whose lists a page can read while the training thread appends to the original."""
        return LiveView(
            **{
                **self.__dict__,
                "batch_losses": list(self.batch_losses),
                "epoch_metrics": list(self.epoch_metrics),
                "log": deque(self.log, maxlen=500),
            }
        )


class TrainingJob:
    """One training run in a daemon thread."""

    MAX_BATCH_POINTS = 5000

    def __init__(self, config: TrainConfig | None = None, resume_dir: str | Path | None = None):
        self.lock = threading.Lock()
        self.view = LiveView(epochs=config.epochs if config else 0)
        self.stop_event = threading.Event()
        if resume_dir is not None:
            self.trainer = Trainer.resume(resume_dir, [self._on_event])
            self.view.run_dir = str(resume_dir)
        else:
            assert config is not None
            self.trainer = Trainer(config, [self._on_event])
        self.config = self.trainer.config
        self.view.epochs = self.config.epochs
        self.thread = threading.Thread(target=self._main, name="modelkit-training", daemon=True)

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
            self.trainer.fit(self.stop_event)
        except Exception as exc:  # noqa: BLE001 - shown in the live view, never re-raised
            with self.lock:
                if self.view.state == "failed":
                    return  # already reported through the Failed event
                # errors before the run folder exists (bad data, unwritable runs folder)
                self.view.state, self.view.error = "failed", str(exc).replace("\n", "; ")
                self.view.log.append(f"error: {self.view.error}")
                self.view.ended = time.time()

    def _on_event(self, event: Event) -> None:
        with self.lock:
            v = self.view
            if isinstance(event, RunStarted):
                v.state, v.run_dir = "decoding", event.run_dir
                v.device, v.precision = event.device, event.precision
                v.num_train, v.num_val = event.num_train, event.num_val
                v.batches, v.epoch = event.steps_per_epoch, event.start_epoch
                v.start_epoch = event.start_epoch
                v.log.append(
                    f"run {Path(event.run_dir).name} on {event.device} ({event.precision})"
                )
            elif isinstance(event, CacheProgress):
                v.state, v.cache_done, v.cache_total = "decoding", event.done, event.total
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
            elif isinstance(event, Message):
                prefix = "warning: " if event.level == "warning" else ""
                v.log.append(prefix + event.text)
            elif isinstance(event, Finished):
                v.state, v.best, v.last, v.ended = "finished", event.best, event.last, time.time()
                v.log.append(f"finished ({event.reason})")
            elif isinstance(event, Stopped):
                v.state, v.ended = "stopped", time.time()
                v.log.append(f"stopped in epoch {event.epoch + 1}")
            elif isinstance(event, Failed):
                v.state, v.error, v.ended = "failed", event.error, time.time()
                v.log.append(f"error: {event.error}")


class JobRegistry:
    """At most one training job at a time per process: one CPU or GPU is busy enough with one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: TrainingJob | None = None
        self._history: list[TrainingJob] = []

    @property
    def current(self) -> TrainingJob | None:
        """The running job, or else the most recent one (so a page can show how it ended)."""
        with self._lock:
            return self._current

    def active(self) -> TrainingJob | None:
        job = self.current
        return job if job is not None and job.thread.is_alive() else None

    def launch(
        self, config: TrainConfig | None = None, resume_dir: str | Path | None = None
    ) -> TrainingJob:
        with self._lock:
            self._refuse_if_busy()
            return self._start(TrainingJob(config, resume_dir))

    def launch_subprocess(self, config: TrainConfig, nproc: int):
        """Train with ``torchrun --nproc_per_node=nproc`` (one process per GPU); the job has
        TrainingJob's interface and reads its progress from the run folder."""
        from modelkit.subprocess_job import TorchrunJob

        with self._lock:
            self._refuse_if_busy()
            return self._start(TorchrunJob(config, nproc))

    def _refuse_if_busy(self) -> None:
        running = self._current
        if running is not None and running.thread.is_alive():
            raise JobBusyError(
                f"training job {running.name} is still running; stop it or wait for it "
                "to finish before launching another"
            )

    def _start(self, job):
        """Record and start ``job`` (a TrainingJob, or a TorchrunJob with the same interface)."""
        self._current = job
        self._history.append(job)
        return job.start()

    def stop(self) -> None:
        job = self.active()
        if job is not None:
            job.stop()
