"""What a page draws of a training job, whoever runs it (a thread here, torchrun elsewhere)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


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
