"""What a page draws of a training job, whoever runs it (a thread here, torchrun elsewhere)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from modelkit.progress import eta_seconds
from modelkit.runs.folder import RunFolder, read_json, stamp


@dataclass
class LiveView:
    """What the live training view draws; updated by events, read by pages under the lock."""

    state: str = "starting"  # starting | decoding | running | finished | stopped | failed
    run_dir: str = ""
    epochs: int = 0  # planned: a time budget may change them mid-run
    plan: str = ""  # why the planned epochs differ from those asked, when they do
    epoch: int = 0  # 0-based epoch in progress
    batch: int = 0
    batches: int = 0
    cache_done: int = 0
    cache_total: int = 0
    # the long step under way outside the batches (decoding, a features pass, validating, the
    # final evaluation), by its name; empty while batches train or when nothing runs
    step: str = ""
    step_done: int = 0
    step_total: int = 0
    step_unit: str = "images"
    step_elapsed: float = 0.0  # seconds into the step at its last event
    step_heard: float = 0.0  # when that event came (time.time())
    images_per_second: float = 0.0
    lr: float = 0.0
    batch_losses: list[tuple[int, float]] = field(default_factory=list)  # (global step, loss)
    epoch_metrics: list[dict[str, Any]] = field(default_factory=list)
    log: deque = field(default_factory=lambda: deque(maxlen=500))
    error: str = ""
    stop_reason: str = ""  # why a stopped run stopped: stopped | pruned | untrained
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
        """The whole run's time left, from its share of batches done; None until 1% is done
        (too little to tell a rate) and once no epoch is left to train."""
        f = self.fraction
        if self.state != "running" or f <= 0.01 or f >= 1.0:
            return None
        return eta_seconds(time.time() - self.started, f, 1.0)

    @property
    def step_fraction(self) -> float:
        return min(1.0, self.step_done / self.step_total) if self.step_total else 0.0

    @property
    def step_eta_seconds(self) -> float | None:
        """The step's time left; the time since its last event counts, so a step that stops
        advancing shows its estimate growing instead of standing still."""
        if not self.step:
            return None
        elapsed = self.step_elapsed + max(0.0, time.time() - self.step_heard)
        return eta_seconds(elapsed, self.step_done, self.step_total)

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


@dataclass
class CandidateTable:
    """What ``auto`` measured before choosing, one row a candidate, and which won and why."""

    title: str
    rows: list[dict[str, Any]]
    winner: str
    why: str


def candidate_tables(run_dir: str) -> list[CandidateTable]:
    """``_candidate_tables`` of the file's current version: the live view polls every 1.5 s
    and the file changes once, when ``auto`` has measured."""
    if not run_dir:
        return []
    return _candidate_tables(run_dir, stamp(RunFolder(run_dir).auto_search))


@lru_cache(maxsize=16)
def _candidate_tables(run_dir: str, _version: tuple[int, ...]) -> list[CandidateTable]:
    """The run's auto_search.json as tables: the backbones probed and, when auto raced them,
    the training paths; none for a run that auto did not choose by measuring. A file written by
    another version may lack fields: a missing value is left empty rather than failing."""
    search = read_json(RunFolder(run_dir).auto_search)
    if not isinstance(search, dict):
        return []
    tables = []
    backbones = [c for c in search.get("candidates") or [] if isinstance(c, dict)]
    if backbones:
        winner = str(search.get("winner") or "")
        rows = [
            {
                "backbone": c.get("arch", ""),
                "image size": c.get("image_size"),
                "held-out accuracy": c.get("heldout_accuracy"),
                "seconds": _seconds(c.get("seconds")),
                "chosen": c.get("arch") == winner,
                "note": c.get("skipped", ""),
            }
            for c in backbones
        ]
        title = "Backbones measured on held-out training images"
        tables.append(CandidateTable(title, rows, winner, str(search.get("why") or "")))
    race = search.get("race")
    paths = [p for p in (race or {}).get("paths") or [] if isinstance(p, dict)]
    if paths:
        winner = str(race.get("winner") or "")
        rows = [
            {
                "path": p.get("name", ""),
                "held-out accuracy": next(
                    (s for s in reversed(p.get("scores") or []) if s is not None), None
                ),
                "epochs": (p.get("epochs") or [None])[-1],
                "seconds": _seconds(p.get("seconds")),
                "chosen": p.get("name") == winner,
                "note": p.get("failed", ""),
            }
            for p in paths
        ]
        title = "Training paths raced on held-out training images"
        tables.append(CandidateTable(title, rows, winner, str(race.get("why") or "")))
    return tables


def _seconds(value: Any) -> float | None:
    """Seconds as one number: a race keeps them per round, and they add up."""
    if isinstance(value, list):
        value = sum(v for v in value if isinstance(v, (int, float)))
    return round(float(value), 1) if isinstance(value, (int, float)) else None
