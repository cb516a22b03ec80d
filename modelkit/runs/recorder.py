"""The listener that writes a run's events to its folder: status, log, metrics.

Every write is what ``RunStore`` reads back: ``status.json`` atomically, ``metrics.jsonl`` one
fsynced line an epoch, so a killed run leaves files that still parse.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from modelkit.events import EpochEnd, Event, Failed, Finished, Message, RunStarted, Stopped
from modelkit.models.checkpoint import atomic_write_json
from modelkit.runs.store import _now, _process_start, read_json


class RunRecorder:
    """The listener that writes a run's events to its folder."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.status: dict[str, Any] = read_json(self.run_dir / "status.json", {}) or {}
        # Time spent training across every session of the run; the time a run lay interrupted
        # before it was resumed does not count.
        self._active_before = float(self.status.get("active_s") or 0.0)
        self._session_start = time.monotonic()

    def _write_status(self, **changes: Any) -> None:
        active = self._active_before + time.monotonic() - self._session_start
        self.status.update(changes, updated_at=_now(), active_s=round(active, 3))
        atomic_write_json(self.run_dir / "status.json", self.status)

    def _append_log(self, text: str, level: str = "info") -> None:
        line = f"{_now()} [{level}] {text}\n"
        # backslashreplace: a warning naming a file whose name is not UTF-8 is still logged
        with open(self.run_dir / "log.txt", "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(line)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            pid = os.getpid()
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
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            changes: dict[str, Any] = {"epoch": event.epoch + 1}
            if event.is_best:
                changes["best"] = row
            self._write_status(**changes)
        elif isinstance(event, Message):
            self._append_log(event.text, event.level)
        elif isinstance(event, Finished):
            self._write_status(state="finished", ended_at=_now(), reason=event.reason)
            self._append_log(f"finished ({event.reason})")
        elif isinstance(event, Stopped):
            self._write_status(state=event.reason, ended_at=_now())
            if event.reason == "pruned":
                self._append_log(f"pruned after epoch {event.epoch + 1}")
            else:
                self._append_log(f"stopped by request in epoch {event.epoch + 1}")
        elif isinstance(event, Failed):
            self._write_status(state="failed", ended_at=_now(), error=event.error)
            self._append_log(event.error, "error")
