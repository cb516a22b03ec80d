"""The CLI's listener: one line per long step and per epoch's batches, then a summary line an
epoch. On a terminal the line updates in place; in a log (a pipe, a file) a step's line comes
every tenth of its work, at most every few seconds, and once at its end, so a log is neither
silent for minutes nor flooded."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from modelkit.events import (
    BatchEnd,
    EpochEnd,
    Event,
    Failed,
    Finished,
    Message,
    RunStarted,
    StepProgress,
    Stopped,
)
from modelkit.names import printable
from modelkit.progress import duration_text, eta_seconds

LOG_EVERY_SECONDS = 2.0  # in a log: a step's first line after this, the next ones as often


def step_line(event: StepProgress) -> str:
    """``Validating epoch 3: 40% 120/300 images · ETA 12 s``: what a step's line says."""
    if event.status == "end":
        took = duration_text(event.elapsed) or "0 s"
        return f"{event.name}: {event.done}/{event.total} {event.unit} in {took}"
    pct = f"{event.done / event.total:.0%} " if event.total else ""
    eta = duration_text(eta_seconds(event.elapsed, event.done, event.total))
    return (
        f"{event.name}: {pct}{event.done}/{event.total} {event.unit} · ETA {eta or 'estimating…'}"
    )


class ProgressPrinter:
    """Prints a run's events to ``stream``; ``tty`` (default: whether the stream is a terminal)
    chooses a line updated in place over plain lines."""

    def __init__(self, stream: TextIO = sys.stderr, tty: bool | None = None):
        self.stream = stream
        if tty is None:
            isatty = getattr(stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.line_open = False  # a line updated in place is on the screen
        self.keep_line = False  # it stays when the next line comes (a step's end), or goes
        self.epoch_began = time.perf_counter()  # when the batches of the current epoch began
        self.logged: tuple[str, int, float] = ("", -1, 0.0)  # (step, tenth, elapsed) last logged

    def _show(self, text: str, keep: bool = False) -> None:
        """Draw ``text`` over the line in place (a terminal), cut to the terminal's width;
        ``keep``: it stays on the screen when the next line comes."""
        width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
        self.stream.write("\r" + printable(text)[:width] + "\x1b[K")
        self.stream.flush()
        self.line_open, self.keep_line = True, keep

    def close(self) -> None:
        """End the line updated in place (kept, or wiped when it was only progress), so what is
        printed next starts on its own line."""
        if self.line_open:
            self.stream.write("\n" if self.keep_line else "\r\x1b[K")
            self.stream.flush()
            self.line_open = False

    def write(self, text: str) -> None:
        """Each line of ``text`` with the control characters of its names (files, classes, the
        run folder) shown as escapes: messages name files anyone may have named."""
        self.close()
        text = "\n".join(printable(line) for line in text.split("\n"))
        print(text, file=self.stream, flush=True)

    def _step(self, event: StepProgress) -> None:
        if self.tty:
            # a step's end stays on the screen, but a validation's: its epoch line follows
            self._show(step_line(event), keep=event.status == "end" and event.step != "validate")
            if event.status == "end":
                self.close()
            self.epoch_began = time.perf_counter()
            return
        step, last_tenth, last_at = self.logged  # last_at: the step's elapsed at its last line
        if step != event.name:  # a new step: nothing of it printed yet
            step, last_tenth, last_at = event.name, -1, 0.0
        if event.status == "end":
            # a short validation's line would only repeat the epoch line that follows it
            if last_tenth >= 0 or event.step != "validate":
                self.write(step_line(event))
            self.logged = ("", -1, 0.0)
            self.epoch_began = time.perf_counter()
            return
        tenth = event.done * 10 // event.total if event.total else 0
        if tenth > last_tenth and event.elapsed - last_at >= LOG_EVERY_SECONDS:
            last_tenth, last_at = tenth, event.elapsed
            self.write(step_line(event))
        self.logged = (step, last_tenth, last_at)

    def _batch(self, event: BatchEnd) -> None:
        """The epoch's batches in place on a terminal; a log gets the epoch's summary only."""
        if not self.tty:
            return
        done = event.batch + 1
        eta = duration_text(
            eta_seconds(time.perf_counter() - self.epoch_began, done, event.batches)
        )
        self._show(
            f"Training epoch {event.epoch + 1}: {done / event.batches:.0%} "
            f"{done}/{event.batches} batches · loss {event.loss:.4f} · "
            f"{event.images_per_second:.0f} img/s · ETA {eta or 'estimating…'}"
        )

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.write(
                f"run {event.run_dir}: {event.num_train} train / {event.num_val} val images, "
                f"{len(event.classes)} classes, {event.device} ({event.precision})"
            )
        elif isinstance(event, StepProgress):
            self._step(event)
        elif isinstance(event, BatchEnd):
            self._batch(event)
        elif isinstance(event, EpochEnd):
            m = event.metrics
            parts = [f"epoch {event.epoch + 1}/{event.epochs}"]
            for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5"):
                if key in m:
                    parts.append(f"{key}={m[key]:.4f}")
            parts.append(f"{m.get('images_per_second', 0):.0f} img/s")
            self.write("  ".join(parts) + ("  *" if event.is_best else ""))
            self.epoch_began = time.perf_counter()
        elif isinstance(event, Message):
            self.write(("warning: " if event.level == "warning" else "") + event.text)
        elif isinstance(event, (Finished, Stopped, Failed)):
            self.close()
