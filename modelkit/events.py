"""The typed events a training run emits; every consumer of a run is a listener of these.

The run store, the app's live view, the CLI progress bar and the tests all subscribe the same
way, so nothing ever reaches into the training loop or polls the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    def to_dict(self) -> dict[str, Any]:
        return {"event": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    run_dir: str
    config: dict
    classes: list
    device: str
    precision: str
    num_train: int
    num_val: int
    start_epoch: int  # 0 for a new run, more when resuming
    steps_per_epoch: int
    start_step: int = 0  # optimizer steps already taken when resuming


@dataclass(frozen=True)
class Message(Event):
    """Something a person should read: a skipped file, a fallback, a phase change."""

    text: str
    level: str = "info"  # info | warning | error
    # also kept in status.json under this key, for a page to show: "budget_note", the one
    # sentence on why a budgeted run ended well before its budget
    status_key: str = ""


@dataclass(frozen=True)
class StepProgress(Event):
    """A long step outside the training batches (decoding, caching, validating, evaluating,
    calibrating): said at its start, as it advances and at its end, so a watcher can name what
    the run is doing, draw its bar and estimate what is left (``modelkit.progress.eta_seconds``)
    instead of showing the last batch while minutes go by."""

    step: str  # which kind of step: decode | features | frozen stages | validate | evaluate | ...
    name: str  # what a person reads: "Computing features for the head (pass 2 of 3)"
    done: int
    total: int
    status: str = "progress"  # start | progress | end
    elapsed: float = 0.0  # seconds since the step started
    unit: str = "images"  # what done and total count


@dataclass(frozen=True)
class CacheProgress(StepProgress):
    """A step that fills a cache from the images before (or between) epochs: decoding, the
    frozen backbone's features, the frozen stages' maps. Its own type, so a listener can wait
    for the data to be ready without reading step names."""

    @property
    def stage(self) -> str:
        return self.step


@dataclass(frozen=True)
class BatchEnd(Event):
    epoch: int  # 0-based
    batch: int  # 0-based within the epoch
    batches: int
    loss: float
    lr: float
    images_per_second: float
    global_step: int


@dataclass(frozen=True)
class EpochEnd(Event):
    epoch: int
    epochs: int
    metrics: dict = field(default_factory=dict)
    is_best: bool = False


@dataclass(frozen=True)
class Planned(Event):
    """The run's plan changed (the time budget fixed the epochs): ``summary`` says how and why."""

    epochs: int
    asked_epochs: int
    summary: str


@dataclass(frozen=True)
class CheckpointSaved(Event):
    path: str
    epoch: int
    kind: str  # last | best


@dataclass(frozen=True)
class Finished(Event):
    run_dir: str
    best: dict
    last: dict
    reason: str = "completed"  # completed | early_stopping


@dataclass(frozen=True)
class Stopped(Event):
    run_dir: str
    epoch: int  # 0-based epoch it stopped in (a pruned run: the epoch it was pruned after)
    batch: int
    reason: str = (
        "stopped"  # stopped (a person asked) | pruned (the Optuna pruner asked) | UNTRAINED
    )


# a Stopped reason: the run ended (a time budget spent on preparing) before it trained one epoch;
# it has no model worth the name, so it is never "finished"
UNTRAINED = "untrained"


@dataclass(frozen=True)
class Failed(Event):
    run_dir: str
    error: str
    traceback: str = ""


ListenerFn = Callable[[Event], None]
