"""The run plan: what a run will do, which the settings asked for and the run itself may change.

The config stays what the person asked (``config.json``); the plan starts from it and is changed
by what learns costs during the run (the time budget fixes the number of epochs, and with it the
schedule's and progressive resizing's length). Saved in the run folder whenever it changes, and
shown on the live view ("planned 19 of the 60 epochs asked: 15-minute time budget").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from modelkit.config import TrainConfig


@dataclass
class RunPlan:
    """Epochs to train and the phases they fall in; ``why`` says what changed them."""

    asked_epochs: int
    head_epochs: int = 0
    epochs: int = 0
    why: str = ""

    def __post_init__(self) -> None:
        self.epochs = self.epochs or self.asked_epochs

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> RunPlan:
        return cls(asked_epochs=cfg.epochs, head_epochs=cfg.head_epochs)

    def phase_of(self, epoch: int) -> int:
        """0 for one-phase runs, else 1 (head only) or 2 (fine-tune) for the 0-based ``epoch``."""
        if not self.head_epochs:
            return 0
        return 1 if epoch < self.head_epochs else 2

    def span(self, phase: int) -> int:
        """How many epochs the schedule of a phase runs over."""
        if phase == 1:
            return self.head_epochs
        if phase == 2:
            return self.epochs - self.head_epochs
        return self.epochs

    def summary(self) -> str:
        """One line for the live view and the log; empty while the plan is what was asked."""
        if self.epochs == self.asked_epochs:
            return ""
        return f"planned {self.epochs} of the {self.asked_epochs} epochs asked: {self.why}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}
