"""The long steps of a run as a person sees them: one way to tell listeners about a step
(``Step``) and one way to estimate what is left (``eta_seconds``), so the app's live view and
the CLI give the same names and the same estimates."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from modelkit.events import Event, StepProgress

# how often a step tells its listeners at most (besides its start and end): every 1% of the
# work, or every half second when one item takes longer than that
MIN_SHARE, MIN_SECONDS = 0.01, 0.5


def eta_seconds(elapsed: float, done: float, total: float) -> float | None:
    """Seconds left at the rate so far: ``elapsed / done * (total - done)``. None while
    nothing is done (there is no rate yet) or the total is unknown."""
    if done <= 0 or total <= 0 or elapsed < 0:
        return None
    return max(0.0, elapsed / done * (total - done))


def duration_text(seconds: float | None) -> str:
    """``42 s``, ``3 min 07 s``, ``2 h 05 min``; empty when unknown (the CLI's wording, the
    same as the app's)."""
    if seconds is None or seconds < 0:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def pass_name(what: str, k: int, passes: int) -> str:
    """The name of pass ``k`` (0-based) of a multi-pass step: it says which pass it is on, so a
    second pass is not mistaken for the first starting again."""
    return f"{what} (pass {k + 1} of {passes})" if passes > 1 else what


class Step:
    """One long step, told as ``StepProgress`` events (``kind``: the event type, e.g.
    ``CacheProgress``): start when entered, progress as ``advance`` is called, end when left,
    also when left by an exception, so no watcher keeps showing a step that is over."""

    def __init__(
        self,
        emit: Callable[[Event], None],
        step: str,
        name: str,
        total: int,
        unit: str = "images",
        kind: type[StepProgress] = StepProgress,
    ) -> None:
        self.emit, self.step, self.name, self.total = emit, step, name, max(int(total), 0)
        self.unit, self.kind = unit, kind
        self.done, self.open = 0, False
        self.started = self.last_told = time.perf_counter()
        self.told_done = 0

    def _tell(self, status: str) -> None:
        now = time.perf_counter()
        self.last_told, self.told_done = now, self.done
        self.emit(
            self.kind(
                self.step, self.name, self.done, self.total, status, now - self.started, self.unit
            )
        )

    def __enter__(self) -> Step:
        self.started, self.open = time.perf_counter(), True
        self._tell("start")
        return self

    def advance(self, n: int = 1) -> None:
        """``n`` more items done; listeners hear of it at most every 1% or half second."""
        self.done = min(self.total, self.done + n) if self.total else self.done + n
        share = (self.done - self.told_done) / self.total if self.total else 1.0
        late = time.perf_counter() - self.last_told >= MIN_SECONDS
        if self.done == self.total or share >= MIN_SHARE or late:
            self._tell("progress")

    def rename(self, name: str) -> None:
        """The step moved on to a part a person should know of (the next pass)."""
        if name != self.name:
            self.name = name
            self._tell("progress")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.open = False
        self._tell("end")
