"""The training loop's state in one object, saved in every ``last.pt`` so a resumed run continues
exactly where the killed one was.

Its ``state_dict()`` keys sit at the top level of the checkpoint (``epoch``, ``global_step``,
``best_value``, ``bad_epochs``, ``best_metrics``, ``history``), where checkpoints have always kept
them, so runs written before this object existed resume unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed: the next epoch to train (0-based)
    global_step: int = 0  # optimizer steps taken
    best_value: float | None = None  # best value of the watched metric so far
    bad_epochs: int = 0  # epochs in a row without improvement (early stopping reads it)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    last_metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    improved: bool = False  # the epoch that just ended is the best so far (not saved)

    def observe(self, epoch: int, metrics: dict[str, Any], key: str, higher: bool) -> bool:
        """Record an ended epoch (0-based) and whether ``metrics[key]`` is the best so far."""
        value = float(metrics[key])
        best = self.best_value
        self.improved = best is None or (value > best if higher else value < best)
        row = {"epoch": epoch + 1, **metrics}
        if self.improved:
            self.best_value, self.bad_epochs, self.best_metrics = value, 0, row
        else:
            self.bad_epochs += 1
        self.history.append(row)
        self.last_metrics = row
        self.epoch = epoch + 1
        return self.improved

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_value": self.best_value,
            "bad_epochs": self.bad_epochs,
            "best_metrics": self.best_metrics,
            "history": self.history,
        }

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        """Read a checkpoint's keys; those an older checkpoint lacks take their defaults."""
        self.epoch = int(payload["epoch"])
        self.global_step = int(payload.get("global_step", 0))
        self.best_value = payload.get("best_value")
        self.bad_epochs = int(payload.get("bad_epochs", 0))
        self.best_metrics = payload.get("best_metrics") or {}
        self.history = list(payload.get("history") or [])
        self.last_metrics = self.history[-1] if self.history else {}
        self.improved = False
