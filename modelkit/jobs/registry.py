"""The job registry the Streamlit pages read: at most one training at a time per process.

Whatever trains (a Train launch, a Tune search, the learning-rate finder), it goes through here, so
a second one is refused with the name of the first. When the app gives the registry its allowed
roots, every launch checks the dataset folder and the starting weights against them once more
(the pages check first; this is the second line), and a resume of a run that another process is
training is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from modelkit.config import ConfigError, TrainConfig
from modelkit.errors import ModelkitError
from modelkit.jobs.thread_job import TrainingJob
from modelkit.paths import PathNotAllowedError, confine_to, resolve_allowed
from modelkit.runs.lock import refuse_if_locked

if TYPE_CHECKING:
    from modelkit.recipes.measured import Measured

T = TypeVar("T")
RootsFn = Callable[[], Iterable[Path]]


class JobBusyError(ModelkitError, RuntimeError):
    """A second launch while a job runs; the message names the running job."""


class JobRegistry:
    """At most one training at a time per process: one CPU or GPU is busy enough with one.

    ``roots``: a function giving the allowed roots at launch time (the app's settings), or None
    for no confinement (Python and the command line)."""

    def __init__(self, roots: RootsFn | None = None) -> None:
        self._lock = threading.Lock()
        self._current: TrainingJob | None = None
        self._history: list[TrainingJob] = []
        self._roots = roots
        # Training not run as a TrainingJob (a search, the LR finder): its name and liveness.
        self._other: tuple[str, Callable[[], bool]] | None = None

    @property
    def current(self) -> TrainingJob | None:
        """The running job, or else the most recent one (so a page can show how it ended)."""
        with self._lock:
            return self._current

    def active(self) -> TrainingJob | None:
        job = self.current
        return job if job is not None and job.thread.is_alive() else None

    def roots(self) -> tuple[Path, ...] | None:
        return None if self._roots is None else tuple(self._roots())

    def launch(
        self,
        config: TrainConfig | None = None,
        resume_dir: str | Path | None = None,
        notes: list[str] | None = None,
        measure: Callable[[], Measured] | None = None,
    ) -> TrainingJob:
        """Train ``config`` (or resume ``resume_dir``) in a thread; ``notes`` (a recipe's
        reasons) go to the run's log first; ``measure``: auto measures in the thread first and
        its measured config is the one trained (``config`` is checked here all the same)."""
        roots = self.roots()
        if resume_dir is not None:
            refuse_if_locked(resume_dir)
        if config is not None:
            self.check_config(config)
        with self._lock:
            self._refuse_if_busy()
            with confine_to(roots):  # the job's thread keeps this context: its scan is confined
                job = TrainingJob(config, resume_dir, notes, measure)
            return self._start(job)

    def launch_subprocess(self, config: TrainConfig, nproc: int):
        """Train with ``torchrun --nproc_per_node=nproc`` (one process per GPU); the job has
        TrainingJob's interface and reads its progress from the run folder."""
        from modelkit.jobs.torchrun_job import TorchrunJob

        self.check_config(config)
        with self._lock:
            self._refuse_if_busy()
            return self._start(TorchrunJob(config, nproc))

    def check_config(self, config: TrainConfig) -> None:
        """ConfigError naming the field when the dataset folder, the runs folder (where the run
        writes) or the starting-weights path is outside the roots (a resumed run's folder is
        checked by its confined scan)."""
        roots = self.roots()
        if roots is None:
            return
        fields = [("data_dir", config.data_dir), ("runs_dir", config.runs_dir)]
        if config.weights not in ("imagenet", "none"):
            fields.append(("weights", config.weights))
        problems: list[str] = []
        for name, value in fields:
            try:
                resolve_allowed(value, roots)
            except PathNotAllowedError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise ConfigError("\n".join(problems))

    def _refuse_if_busy(self) -> None:
        running = self._current
        if running is not None and running.thread.is_alive():
            raise JobBusyError(
                f"training job {running.name} is still running; stop it or wait for it "
                "to finish before launching another"
            )
        if self._other is not None:
            name, alive = self._other
            if alive():
                raise JobBusyError(
                    f"{name} is still running; stop it or wait for it to finish before "
                    "starting another training"
                )
            self._other = None

    def refuse_if_busy(self) -> None:
        """JobBusyError naming what trains now, if anything does."""
        with self._lock:
            self._refuse_if_busy()

    def start_other(self, name: str, start: Callable[[], T], alive: Callable[[], bool]) -> T:
        """Start training that is not a TrainingJob (a search) if nothing trains now; ``alive``
        tells later launches whether it still runs."""
        with self._lock:
            self._refuse_if_busy()
            started = start()
            self._other = (name, alive)
            return started

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Training that runs right here, in the caller's thread (the learning-rate finder):
        refused if anything trains, and every other launch is refused until the block ends."""
        done = threading.Event()
        self.start_other(name, lambda: None, lambda: not done.is_set())
        try:
            with confine_to(self.roots()):
                yield
        finally:
            done.set()

    def _start(self, job):
        """Record and start ``job`` (a TrainingJob, or a TorchrunJob with the same interface)."""
        self._current = job
        self._history.append(job)
        return job.start()

    def stop(self) -> None:
        job = self.active()
        if job is not None:
            job.stop()
