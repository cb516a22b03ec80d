"""The listener that writes a run's events to its folder: status, log, metrics.

Every write is what ``RunStore`` reads back: the status atomically, the metrics one fsynced line
an epoch, so a killed run leaves files that still parse. Lines are appended without following
links: a run folder from elsewhere cannot send them into another file.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from modelkit.atomic import append_text, atomic_write_json
from modelkit.events import (
    UNTRAINED,
    EpochEnd,
    Event,
    Failed,
    Finished,
    Message,
    RunStarted,
    StepProgress,
    Stopped,
)
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.store import _now, _process_start


class RunRecorder:
    """The listener that writes a run's events to its folder."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.folder = RunFolder(run_dir)
        self.status: dict[str, Any] = read_json(self.folder.status, {}) or {}
        # Time spent training across every session of the run; the time a run lay interrupted
        # before it was resumed does not count.
        self._active_before = float(self.status.get("active_s") or 0.0)
        self._session_start = time.monotonic()
        self._step_written = -1.0  # the step's elapsed seconds when its status was last written

    def _write_status(self, **changes: Any) -> None:
        active = self._active_before + time.monotonic() - self._session_start
        self.status.update(changes, updated_at=_now(), active_s=round(active, 3))
        atomic_write_json(self.folder.status, self.status)

    def _append_log(self, text: str, level: str = "info") -> None:
        append_text(self.folder.log, f"{_now()} [{level}] {text}\n")

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            pid = os.getpid()
            self.status.pop("budget_note", None)  # a resumed run's earlier ending no longer holds
            self._write_status(
                state="running",
                pid=pid,
                proc_start=_process_start(pid),
                host=socket.gethostname(),
                started_at=self.status.get("started_at") or _now(),
                resumed_at=_now() if event.start_epoch else None,
                device=event.device,
                precision=event.precision,
                error="",
                ended_at=None,
            )
            what = "resumed at epoch" if event.start_epoch else "started on"
            where = event.start_epoch + 1 if event.start_epoch else event.device
            self._append_log(f"run {what} {where} ({event.precision})")
        elif isinstance(event, EpochEnd):
            row = {"epoch": event.epoch + 1, **event.metrics}
            append_text(self.folder.metrics, json.dumps(row) + "\n", sync=True)
            changes: dict[str, Any] = {"epoch": event.epoch + 1}
            if event.is_best:
                changes["best"] = row
            self._write_status(**changes)
        elif isinstance(event, StepProgress):
            self._step(event)
        elif isinstance(event, Message):
            self._append_log(event.text, event.level)
            if event.status_key:
                self._write_status(**{event.status_key: event.text})
        elif isinstance(event, Finished):
            self._write_status(step=None, state="finished", ended_at=_now(), reason=event.reason)
            self._append_log(f"finished ({event.reason})")
        elif isinstance(event, Stopped):
            state = "pruned" if event.reason == "pruned" else "stopped"
            self._write_status(step=None, state=state, ended_at=_now(), reason=event.reason)
            if event.reason == "pruned":
                self._append_log(f"pruned after epoch {event.epoch + 1}")
            elif event.reason == UNTRAINED:
                self._append_log("ended before the first epoch: no model was trained")
            else:
                self._append_log(f"stopped by request in epoch {event.epoch + 1}")
        elif isinstance(event, Failed):
            self._write_status(step=None, state="failed", ended_at=_now(), error=event.error)
            self._append_log(event.error, "error")

    def _step(self, event: StepProgress) -> None:
        """The step under way in the status (at most once a second), for a watcher in another
        process (a torchrun job); its end in the log, where the time each step took is read
        later, but for the epochs' validations: a line each epoch would crowd the log."""
        if event.status == "end":
            self._step_written = -1.0
            self._write_status(step=None)
            if event.step != "validate":
                took = f"{event.elapsed:.1f} s"
                self._append_log(f"{event.name}: {event.done}/{event.total} {event.unit} in {took}")
            return
        if event.status == "start" or event.elapsed - self._step_written >= 1.0:
            self._step_written = event.elapsed
            step = {k: getattr(event, k) for k in ("name", "done", "total", "unit", "elapsed")}
            self._write_status(step=step)
