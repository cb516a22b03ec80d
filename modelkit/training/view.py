"""What a callback may see of the Trainer: a typed view of it, so a hook's ``trainer`` argument
is checked and searchable instead of ``Any``. A Protocol, not the class: the loop imports its
callbacks, and a callback module must not import the loop back. A test checks that a trainer
has everything the view promises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from modelkit.config import TrainConfig
from modelkit.events import Event, ListenerFn
from modelkit.runs.folder import RunFolder
from modelkit.training.distributed import Distributed
from modelkit.training.features import CachedFeatures
from modelkit.training.plan import RunPlan
from modelkit.training.state import LoopState


class TrainerView(Protocol):
    # what was asked, what the run will do, and where it is
    config: TrainConfig
    plan: RunPlan
    state: LoopState
    run_dir: Path | None
    record: bool
    classes: list[str]
    splits: dict[str, list[Any]]
    data: Any  # setup.Decoded: the decoded images of every split (rows, labels, paths, cache)
    # where and how it computes
    device: torch.device
    precision: str
    dist: Distributed
    generator: torch.Generator
    # the network and its optimisation, for the phase under way
    model: nn.Module
    eval_model: nn.Module
    forward: Callable[..., torch.Tensor]
    train_forward: Callable[..., torch.Tensor]
    phase: int
    monitor: str
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    steps_per_epoch: int
    lr: float
    train_size: int
    # set by the technique callbacks
    loss_weights: torch.Tensor | None
    sampler_weights: torch.Tensor | None
    ema_model: nn.Module | None
    # the caches of the frozen parts, and the time spent computing them inside epochs
    features: CachedFeatures | None
    stage_cache: CachedFeatures | None
    one_off_seconds: float
    best_split_logits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    last_val_logits: tuple[torch.Tensor, torch.Tensor] | None
    # the epoch under way
    epoch_started: float
    epoch_seen: int
    # who hears and acts
    listeners: list[ListenerFn]
    callbacks: list[Any]
    user_callbacks: list[Any]
    stop_event: threading.Event
    stopped_at: tuple[int, int]

    @property
    def run_folder(self) -> RunFolder: ...

    def emit(self, event: Event) -> None: ...

    def request_stop(self, reason: str) -> None: ...

    def replan(self, epochs: int, why: str) -> None: ...

    def spent_once(self, seconds: float) -> None: ...

    def steps_for(self, images: int) -> int: ...

    def enter_phase(self, phase: int) -> None: ...

    def build_optimisation(self) -> None: ...

    def predict(
        self, split: str, tta: bool = True, progress: Callable[[int], None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def fit(self, stop_event: threading.Event | None = None) -> Any: ...
