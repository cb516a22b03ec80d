"""A training job run as a ``torchrun`` subprocess (several GPUs), watched through its run folder.

``TorchrunJob`` has the interface of ``TrainingJob`` that pages use (``start``, ``stop``, ``join``,
``snapshot``, ``name``, ``config``, ``thread``), so the app's live view and sidebar draw it
unchanged. The trainer runs in other processes, so its events cannot reach us: a watcher thread
polls the run folder rank 0 writes (status.json, metrics.jsonl, log.txt), and progress moves per
epoch rather than per batch. ``stop()`` sends SIGINT to torchrun, which passes it on to every
worker once; the workers agree to stop before the same batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

from modelkit.atomic import atomic_write_json
from modelkit.config import TrainConfig
from modelkit.errors import ModelkitError
from modelkit.jobs.live_view import LiveView
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.store import read_metrics
from modelkit.training.loop import Trainer
from modelkit.training.progress import ProgressPrinter


def worker_source(job_dir: Path, config: TrainConfig | None, resume_dir: Path | None) -> Path:
    """What the torchrun workers start from: a run folder to resume, or the TrainConfig written
    as JSON (the run's config.json format) into ``job_dir``. A path, not training flags: the
    config never goes through a command line (torchrun's own parser would even take
    ``--monitor val_acc`` for its ``--monitor-interval``)."""
    if resume_dir is not None:
        return resume_dir
    assert config is not None
    path = job_dir / "config.json"
    atomic_write_json(path, config.to_dict())
    return path


def _status(run_dir: Path) -> dict:
    status = read_json(RunFolder(run_dir).status, {})
    return status if isinstance(status, dict) else {}


def torchrun_command(nproc: int, source: Path) -> list[str]:
    """torchrun starting ``nproc`` workers of this module on ``source`` (see ``worker_main``)."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", "-m", "modelkit.jobs.torchrun_job", str(source),
    ]  # fmt: skip


def worker_main(source: str) -> int:
    """One torchrun worker: resume the run folder ``source``, or train the TrainConfig JSON file
    ``source``. SIGINT (torchrun forwards one to every worker) stops before the next batch, on
    every rank at once. Exit 0 when the run finished; errors print one ``error:`` line, which
    the job shows."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    printer = ProgressPrinter(sys.stderr)
    try:
        path = Path(source)
        if path.is_dir():
            trainer = Trainer.resume(path, [printer])
        else:
            trainer = Trainer(TrainConfig.load(path), [printer])
        result = trainer.fit(stop)
    except ModelkitError as exc:
        print(f"error: {str(exc).replace(chr(10), '; ')}", file=sys.stderr, flush=True)
        return 1
    finally:
        printer.close()
        signal.signal(signal.SIGINT, previous)
    return 0 if result.state == "finished" else 130


def _children(pid: int) -> set[int]:
    """Direct children of ``pid`` (Linux /proc); empty where that cannot be read."""
    try:
        return {int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except (OSError, ValueError):
        return set()


def show_recorded_step(view: LiveView, step: object) -> None:
    """The step the run's recorder wrote in its status (``RunRecorder``), or none: what rank 0
    is doing between batches, read from another process."""
    fields = ("name", "done", "total", "elapsed")
    if not isinstance(step, dict) or not all(k in step for k in fields):
        view.step = ""
        return
    try:
        done, total, elapsed = int(step["done"]), int(step["total"]), float(step["elapsed"])
    except (TypeError, ValueError):  # a status written by something else: no step to show
        view.step = ""
        return
    view.step, view.step_done, view.step_total = str(step["name"]), done, total
    view.step_unit, view.step_elapsed = str(step.get("unit", "images")), elapsed
    view.step_heard = time.time()


class TorchrunJob:
    POLL_SECONDS = 0.5

    def __init__(
        self,
        config: TrainConfig | None = None,
        nproc: int = 2,
        resume_dir: str | Path | None = None,
        env: dict[str, str] | None = None,
    ):
        if resume_dir is not None:
            config = TrainConfig.load(RunFolder(resume_dir).config)
        assert config is not None
        self.config = config
        self.resume_dir = Path(resume_dir) if resume_dir is not None else None
        self.nproc = nproc
        self.env = {**os.environ, **(env or {})}
        self.lock = threading.Lock()
        self.view = LiveView(epochs=config.epochs, batches=1)
        self.view.run_dir = str(resume_dir) if resume_dir else ""
        self.stop_event = threading.Event()
        self.process: subprocess.Popen | None = None
        self.returncode: int | None = None
        self._output = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        self._tmp = tempfile.TemporaryDirectory(prefix="modelkit-torchrun-")
        self._runs_before = set(self._run_folders())
        self.thread = threading.Thread(target=self._watch, name="modelkit-torchrun", daemon=True)

    @property
    def name(self) -> str:
        return Path(self.view.run_dir).name if self.view.run_dir else self.config.arch

    def _run_folders(self) -> list[Path]:
        root = Path(self.config.runs_dir)
        return [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []

    # -- the TrainingJob interface ----------------------------------------------------------------
    def start(self) -> TorchrunJob:
        source = worker_source(Path(self._tmp.name), self.config, self.resume_dir)
        self.process = subprocess.Popen(
            torchrun_command(self.nproc, source),
            stdout=self._output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,  # Ctrl-C in the app's terminal is not the job's business
        )
        with self.lock:
            self.view.log.append(f"torchrun: {self.nproc} processes (pid {self.process.pid})")
        self.thread.start()
        return self

    def stop(self) -> None:
        """Ask for a graceful stop: SIGINT to torchrun, which forwards it to each worker once."""
        self.stop_event.set()
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def snapshot(self) -> LiveView:
        with self.lock:
            return self.view.copy()

    # -- watching ---------------------------------------------------------------------------------
    def _find_run_dir(self) -> str:
        """The folder rank 0 created: new since launch, and (when several are) written by one of
        torchrun's worker processes."""
        new = [p for p in self._run_folders() if p not in self._runs_before]
        new = [p for p in new if RunFolder(p).config.is_file()]
        if self.process is not None and len(new) > 1:
            workers = _children(self.process.pid)
            new = [
                p for p in new if (read_json(RunFolder(p).status, {}) or {}).get("pid") in workers
            ]
        return str(new[0]) if len(new) == 1 else ""

    def _poll(self) -> None:
        run_dir = self.view.run_dir or self._find_run_dir()
        if not run_dir:
            return
        folder = RunFolder(run_dir)
        status = _status(folder.path)
        rows = read_metrics(folder.path)
        plan = read_json(folder.plan, {})
        plan = plan if isinstance(plan, dict) else {}
        try:
            log = folder.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            log = []
        with self.lock:
            v = self.view
            v.run_dir = run_dir
            v.device = status.get("device", v.device)
            v.precision = status.get("precision", v.precision)
            state = status.get("state")
            if state == "running":
                if v.state != "running":
                    v.started = time.time()
                    v.start_epoch = len(rows)
                v.state = "running"
            if isinstance(plan.get("epochs"), int) and plan["epochs"] > 0:
                v.epochs, v.plan = plan["epochs"], str(plan.get("summary", ""))
            v.epoch_metrics = rows
            v.epoch = len(rows)
            v.batch = 0
            if rows:
                v.last = rows[-1]
                v.lr = float(rows[-1].get("lr", 0.0) or 0.0)
                v.images_per_second = float(rows[-1].get("images_per_second", 0.0) or 0.0)
            if isinstance(status.get("best"), dict):
                v.best = status["best"]
            show_recorded_step(v, status.get("step"))
            v.log = deque(v.log, maxlen=500)
            v.log.extend(line.split(" ", 1)[-1] for line in log[self._log_seen :])
            self._log_seen = len(log)
            if state in ("finished", "stopped", "failed"):
                v.state, v.error = state, str(status.get("error", "") or "")

    _log_seen = 0

    def _watch(self) -> None:
        assert self.process is not None
        while self.process.poll() is None:
            self._poll()
            time.sleep(self.POLL_SECONDS)
        self.returncode = self.process.returncode
        self._poll()
        self._output.seek(0)
        output = self._output.read().splitlines()
        self._output.close()
        self._tmp.cleanup()
        with self.lock:
            v = self.view
            v.ended = time.time()
            if v.state not in ("finished", "stopped", "failed"):
                # died before rank 0 could record it (bad settings, a crash, a kill)
                errors = [line for line in output if line.startswith("error:")]
                v.state = "stopped" if self.stop_event.is_set() else "failed"
                if v.state == "failed":
                    v.error = (errors[-1][len("error: ") :] if errors else "") or (
                        f"torchrun exited with code {self.returncode}: "
                        + (output[-1] if output else "no output")
                    )
                    v.log.append(f"error: {v.error}")


if __name__ == "__main__":  # a torchrun worker
    sys.exit(worker_main(sys.argv[1]))
