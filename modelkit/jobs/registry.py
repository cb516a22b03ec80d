"""The job registry the Streamlit pages read: at most one training job at a time per process."""

from __future__ import annotations

import threading
from pathlib import Path

from modelkit.config import TrainConfig
from modelkit.errors import ModelkitError
from modelkit.jobs.thread_job import TrainingJob


class JobBusyError(ModelkitError, RuntimeError):
    """A second launch while a job runs; the message names the running job."""


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
        from modelkit.jobs.torchrun_job import TorchrunJob

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
