"""An export in a background thread, so a front end can show its progress instead of freezing.

Writing, quantising and proving an export takes from seconds to minutes on a CPU; the app
starts an ``ExportJob`` and reads ``snapshot()`` on each rerun. The thread makes no UI call.
It runs in a copy of its creator's context, so the app's allowed roots still apply to the
images it reads.
"""

from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from pathlib import Path

from modelkit.serving.export import DEFAULT_MAX_DROP, ExportRefused, ExportResult, export_run


@dataclass
class ExportState:
    """What a page draws: the last step, and the result or the error once it ended."""

    run: str
    format: str
    steps: list[str] = field(default_factory=list)
    running: bool = True
    result: ExportResult | None = None
    error: str = ""
    refused: ExportRefused | None = None  # set with error when the accuracy check refused it


class ExportJob:
    def __init__(self, run: str | Path, fmt: str, max_drop: float = DEFAULT_MAX_DROP):
        self._lock = threading.Lock()
        self._state = ExportState(str(run), fmt)
        self._max_drop = max_drop
        self.thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._main,),
            name=f"modelkit-export-{fmt}",
            daemon=True,
        )

    def start(self) -> ExportJob:
        self.thread.start()
        return self

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def snapshot(self) -> ExportState:
        with self._lock:
            s = self._state
            return ExportState(
                s.run, s.format, list(s.steps), s.running, s.result, s.error, s.refused
            )

    def _step(self, message: str) -> None:
        with self._lock:
            self._state.steps.append(message)

    def _main(self) -> None:
        s = self._state
        try:
            result = export_run(s.run, s.format, max_drop=self._max_drop, progress=self._step)
            with self._lock:
                s.result = result
        except ExportRefused as exc:
            with self._lock:
                s.error, s.refused = str(exc).splitlines()[0], exc
        except Exception as exc:  # noqa: BLE001 - any failure is shown, never lost in a thread
            with self._lock:
                s.error = str(exc) or type(exc).__name__
        finally:
            with self._lock:
                s.running = False
