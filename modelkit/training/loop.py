"""Trainer: the training loop, and nothing but the loop.

It sets a run up (``setup.py``), then runs epochs of batches and calls its callbacks by hook name
(``callbacks/``): they switch phases, write checkpoints, stop early, evaluate at the end and turn
the hooks into the events listeners hear (the run folder, the app, the CLI, tests). The loop
never knows who is watching, and a callback acts on it only through the trainer's methods
(``request_stop``, ``enter_phase``, ``build_optimisation``) and its ``state``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelkit.atomic import atomic_write_json
from modelkit.config import TrainConfig
from modelkit.device import pick_device, resolve_precision
from modelkit.evaluation.metrics import topk_accuracy
from modelkit.events import UNTRAINED, Event, ListenerFn, Message, Planned
from modelkit.models import stages
from modelkit.models.checkpoint import load_checkpoint
from modelkit.progress import Step
from modelkit.runs.folder import RunFolder
from modelkit.runs.lock import lock_run
from modelkit.runs.members import untrained_reason
from modelkit.training import balance, distributed, optim, setup
from modelkit.training.callbacks import FINISHED, Callback, call_hooks
from modelkit.training.callbacks.checkpoint import restore
from modelkit.training.callbacks.defaults import default_callbacks
from modelkit.training.errors import NonFiniteLoss, StopTraining, TrainingError, explain_error
from modelkit.training.evaluation_pass import split_logits
from modelkit.training.inputs import Batch, build_caches, input_source
from modelkit.training.plan import RunPlan
from modelkit.training.state import LoopState

__all__ = ["TrainResult", "Trainer", "TrainingError", "explain_error"]


def val_metrics(logits: torch.Tensor, labels: torch.Tensor, n_classes: int) -> dict[str, Any]:
    """Loss and top-1 (top-5 with five classes or more) accuracy on the validation split."""
    loss = float(nn.functional.cross_entropy(logits, labels)) if len(labels) else 0.0
    metrics = {"val_loss": loss, "val_acc": topk_accuracy(logits, labels, 1)}
    if n_classes >= 5:
        metrics["val_top5"] = topk_accuracy(logits, labels, 5)
    return metrics


@dataclass
class TrainResult:
    run_dir: Path
    state: str  # finished | stopped | pruned
    best: dict[str, Any]
    last: dict[str, Any]


class Trainer:
    """Train one run. ``Trainer(config).fit()`` starts a new run; ``Trainer.resume(run_dir)``
    continues one from its ``last.pt`` exactly as if it had never stopped. ``callbacks`` run
    after the built-in ones; ``record=False`` trains without a run folder (the LR finder)."""

    # Set when ``fit`` sets the run up (not in ``__init__``: they need the device, the splits
    # and the weights, which a Trainer built only to be resumed or inspected never loads).
    # Declared here so the whole state is in one place; a test keeps it so.
    dist: distributed.Distributed
    device: torch.device
    precision: str
    classes: list[str]
    splits: dict[str, list[Any]]
    data: setup.Decoded
    generator: torch.Generator
    model: nn.Module
    weights_source: str
    forward: Callable[..., torch.Tensor]
    train_forward: Callable[..., torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler | None
    criterion: nn.Module
    steps_per_epoch: int
    fit_started: float  # a time budget counts from here
    epoch_started: float
    epoch_seen: int  # training images seen in the epoch under way

    def __init__(
        self,
        config: TrainConfig,
        listeners: Iterable[ListenerFn] = (),
        *,
        run_dir: str | Path | None = None,
        callbacks: Iterable[Callback] = (),
        record: bool = True,
    ):
        self.config = config  # what was asked; what the run will do is the plan
        self.plan = RunPlan.from_config(config)
        self.listeners = list(listeners)
        self.run_dir = Path(run_dir) if run_dir else None
        self.user_callbacks, self.record = list(callbacks), record
        self.callbacks: list[Callback] = []
        self.stop_event = threading.Event()
        self.state = LoopState()
        self.phase = 0  # 1: head only, 2: fine-tuning (the phase switch enters them)
        self.stop_reason, self.stopped_at = "", (0, 0)
        # set by the technique callbacks (callbacks/techniques.py, ema.py) when they are on
        self.loss_weights = self.sampler_weights = self.ema_model = None
        self.train_size = config.image_size
        # cached outputs of the frozen backbone (the head-only phase) or of its frozen stages
        self.features: setup.CachedFeatures | None = None
        self.stage_cache: setup.CachedFeatures | None = None
        # seconds spent inside epochs on work done once (computing a cached pass when an epoch
        # first needs it): the time budget counts them as spent, not as what epochs cost
        self.one_off_seconds = 0.0
        # split -> (logits, labels) of the best weights, for the end of the run (final_evaluation)
        self.best_split_logits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        # (logits, labels) of the last epoch's validation pass: a callback that keeps the best
        # epoch's (the race's held-out scores) reads them instead of predicting again
        self.last_val_logits: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def resume(cls, run_dir: str | Path, listeners: Iterable[ListenerFn] = ()) -> Trainer:
        folder = RunFolder(run_dir)
        if why := untrained_reason(folder.path):  # an ensemble: no epochs, nothing to go on with
            raise TrainingError(f"{folder.path}: nothing to resume: {why}")
        if not folder.can_resume():
            last = folder.last.relative_to(folder.path)
            raise TrainingError(f"{folder.path}: nothing to resume (no {last})")
        if problem := folder.link_problem():  # resuming would write through it
            raise TrainingError(f"{folder.path}: refused to resume: {problem}")
        return cls(TrainConfig.load(folder.config), listeners, run_dir=folder.path)

    def replan(self, epochs: int, why: str) -> None:
        """Train ``epochs`` instead of what the plan said; the config keeps what was asked. The
        plan is saved in the run folder and announced (the live view shows it)."""
        self.plan.epochs, self.plan.why = epochs, why
        if self.run_dir is not None and self.dist.is_main:
            atomic_write_json(self.run_folder.plan, self.plan.to_dict())
        self.emit(Planned(epochs, self.plan.asked_epochs, self.plan.summary()))

    @property
    def run_folder(self) -> RunFolder:
        """Where this run's files go (the run must have a folder: recording, or resumed)."""
        if self.run_dir is None:
            raise TrainingError("this run keeps no folder (record=False)")
        return RunFolder(self.run_dir)

    # -- what callbacks and the outside world use -------------------------------------------------
    def spent_once(self, seconds: float) -> None:
        """Count ``seconds`` of one-off work inside an epoch (a cached pass computed)."""
        self.one_off_seconds += seconds

    def emit(self, event: Event, quiet: bool = False) -> None:
        """Tell every listener; ``quiet``: a failing listener is skipped (final events)."""
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken listener must not hide the real error
                if not quiet:
                    raise

    def stop(self) -> None:
        """Ask the loop to stop (a person's request); it does so before the next batch."""
        self.stop_event.set()

    def request_stop(self, reason: str) -> None:
        """A callback asks the loop to end: after this batch if asked from a batch hook, else
        after this epoch. The first reason asked for is the one recorded."""
        self.stop_reason = self.stop_reason or reason

    @property
    def monitor(self) -> str:
        """The watched metric: the config's, or train_loss when there is no val split."""
        return self.config.monitor if len(self.data.rows.get("val", [])) else "train_loss"

    @property
    def eval_model(self) -> nn.Module:
        """The weights evaluation judges: the EMA weights when EMA is on."""
        return self.ema_model if self.ema_model is not None else self.model

    @property
    def lr(self) -> float:
        return optim.head_lr(self.optimizer)

    def steps_for(self, n: int) -> int:
        bs = self.config.batch_size
        steps = math.ceil(n / bs)
        if steps > 1 and 0 < n % bs < self.dist.min_last_batch():
            steps -= 1  # a batch of one breaks BatchNorm; its image is seen next epoch
        return steps

    def enter_phase(self, phase: int) -> None:
        """Two-phase runs: phase 1 freezes the backbone, phase 2 unfreezes it (phases.py)."""
        self.phase = phase
        if phase:
            cfg = self.config
            stages.set_backbone_trainable(self.model, cfg.arch, phase == 2, cfg.frozen_stages)

    def build_optimisation(self) -> None:
        """Optimizer, schedule and scaler for the current phase (optim.py)."""
        cfg = self.config
        self.steps_per_epoch = self.steps_for(len(self.data.rows["train"]))
        self.optimizer = optim.create_optimizer(
            self.model, cfg.arch, **optim.optimizer_kwargs(cfg, self.phase)
        )
        self.scheduler = optim.create_scheduler(
            self.optimizer,
            **optim.scheduler_kwargs(
                cfg, self.plan.span(self.phase), self.steps_per_epoch, self.monitor
            ),
        )
        self.scaler = optim.create_scaler(self.precision, self.device)
        weight = None if self.loss_weights is None else self.loss_weights.to(self.device)
        self.criterion = nn.CrossEntropyLoss(weight, label_smoothing=cfg.label_smoothing)

    # -- the run --------------------------------------------------------------------------------
    def fit(self, stop_event: threading.Event | None = None) -> TrainResult:
        self.fit_started = time.perf_counter()  # a time budget counts from here
        if stop_event is not None:
            self.stop_event = stop_event
        cfg, resuming = self.config, self.run_dir is not None
        self.dist = distributed.init_from_env(pick_device(cfg.device), cfg.batch_size)
        self.device = self.dist.device  # cuda:LOCAL_RANK under torchrun on GPUs
        self.precision = resolve_precision(cfg.precision, self.device)
        self.classes, self.splits = setup.load_splits(cfg, self.run_dir)
        self.model, self.weights_source = setup.build_model(
            cfg, len(self.classes), self.device, resuming
        )
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        if self.record and not resuming and self.dist.is_main:  # rank 0 writes; others get it
            self.run_dir = setup.create_run_folder(cfg, self.classes, self.splits)
        self.run_dir = self.dist.broadcast(self.run_dir)
        # one writer per run: held until training ends; the kernel drops it if the process dies
        run_lock = lock_run(self.run_dir) if self.run_dir and self.dist.is_main else None
        self.callbacks = default_callbacks(self)
        try:
            try:
                saved = load_checkpoint(self.run_folder.last) if resuming else None
                if saved is not None:  # RunStarted already says where the run continues from
                    self.state.load_state_dict(saved)
                reason = self._run(saved)
            except StopTraining as stop:
                reason, self.stopped_at = "stopped", (stop.epoch, stop.batch)
            except Exception as exc:
                call_hooks(self.callbacks, "on_exception", self, exc, quiet=True)
                raise TrainingError(explain_error(exc)) from exc
            finally:
                self.dist.close()
            if reason not in FINISHED:  # the lock is what says "running": held until this is
                call_hooks(self.callbacks, "on_fit_end", self, reason, quiet=True)
        finally:
            if run_lock is not None:
                run_lock.release()
        result = "finished" if reason in FINISHED else reason
        return TrainResult(self.run_dir, result, self.state.best_metrics, self.state.last_metrics)

    def _run(self, saved: dict[str, Any] | None) -> str:
        cfg = self.config
        self.generator = torch.Generator().manual_seed(cfg.seed)
        call_hooks(self.callbacks, "setup", self)
        if saved is None:
            self.emit(Message(f"starting from {self.weights_source}"))
        if self.dist.enabled:
            self.emit(Message(self.dist.describe(cfg.batch_size)))
        self.data = setup.decode(cfg, self.splits, self.emit, self.stop_event.is_set)
        self.build_optimisation()  # for the phase the phase switch's setup entered
        if saved is not None:
            restore(self, saved)
        build_caches(self)
        call_hooks(self.callbacks, "on_fit_start", self)
        epoch = self.state.epoch
        while epoch < self.plan.epochs:  # read each time: a time budget may change the plan
            call_hooks(self.callbacks, "on_epoch_start", self, epoch)
            metrics = self._train_epoch(epoch)
            if metrics is None:  # stopped within the epoch
                break
            if len(self.data.rows.get("val", [])) and self.dist.is_main:
                metrics.update(self._validate(epoch))
            metrics = self.dist.broadcast(metrics)  # every rank decides on rank 0's numbers
            metrics["lr"] = self.lr
            if self.phase:
                metrics["phase"] = self.phase
            optim.step_epoch(self.scheduler, metrics, self.monitor)
            self.state.observe(epoch, metrics, self.monitor, higher=self.monitor == "val_acc")
            self.stopped_at = (epoch, self.steps_per_epoch)
            call_hooks(self.callbacks, "on_epoch_end", self, epoch, metrics)
            if self.stop_reason:
                break
            epoch += 1
        reason = self.stop_reason or "completed"
        if reason in FINISHED and not self.state.history:
            self._say_untrained()
            reason = UNTRAINED
        if reason in FINISHED:  # inside the try: a failing final write fails the run
            call_hooks(self.callbacks, "on_fit_end", self, reason)
        return reason

    def _say_untrained(self) -> None:
        """Why a run ended without one trained epoch: the person must not mistake it for a model."""
        spent = time.perf_counter() - self.fit_started
        budget = self.config.time_budget
        why = (
            f"the {budget:.0f} s time budget was spent preparing (decoding the images, caching "
            "features)"
            if budget
            else "it was stopped before the first epoch ended"
        )
        self.emit(
            Message(
                f"no epoch was trained: {why}; {spent:.0f} s went by. Nothing here is a model "
                "yet: start again with a longer budget (or fewer images)",
                level="warning",
            )
        )

    # -- one epoch ------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> dict[str, Any] | None:
        """One pass over the training images; None when the run stops within it."""
        cfg = self.config
        self.model.train()
        if cfg.freeze_backbone or self.phase == 1 or cfg.freeze_bn:
            stages.freeze_batchnorm(self.model, cfg.arch)
        elif cfg.frozen_stages:
            stages.freeze_batchnorm(self.model, cfg.arch, cfg.frozen_stages)
        source = input_source(self)  # images, cached features or cached stage maps
        labels = self.data.labels["train"]
        order = balance.epoch_order(labels, self.sampler_weights, self.generator)  # every rank
        # DDP, built again when the trainable parameters change
        self.train_forward = self.forward
        if self.dist.enabled:
            self.train_forward = self.dist.wrap(self.model, cfg.compile)
        total_loss, correct, self.epoch_seen = 0.0, 0, 0
        self.epoch_started = time.perf_counter()
        for b in range(self.steps_per_epoch):
            if self.dist.any(self.stop_event.is_set()):
                self.request_stop("stopped")
            if self.stop_reason:
                self.stopped_at = (epoch, b)
                return None
            call_hooks(self.callbacks, "on_batch_start", self, epoch, b)
            batch = order[b * cfg.batch_size : (b + 1) * cfg.batch_size].numpy()
            idx, part = self.dist.shard(batch)  # this process's part of the batch
            y = labels[idx].to(self.device, non_blocking=True)
            x = source.batch(self, epoch, idx, part)
            step = Batch(epoch, b, idx, x, y, target=y, images=source.images, part=part)
            call_hooks(self.callbacks, "before_batch", self, step)
            out = step.logits = source.forward(self, step.x)
            weight = self.dist.loss_weight(len(idx), len(batch))
            loss = step.loss = self.criterion(out.float(), step.target) * weight
            call_hooks(self.callbacks, "after_loss", self, step)
            optim.optimizer_step(
                loss, self.optimizer, self.scaler, self.scheduler, self.model, cfg.grad_clip,
                before_step=partial(call_hooks, self.callbacks, "before_step", self, step),
            )  # fmt: skip
            batch_loss = self.dist.mean(float(loss.detach()))  # the global batch's mean loss
            if not math.isfinite(batch_loss):
                raise NonFiniteLoss(
                    f"the loss became {batch_loss} in epoch {epoch + 1}; "
                    "lower the learning rate or turn on gradient clipping"
                )
            total_loss += batch_loss * len(batch)
            correct += int((out.detach().argmax(1) == y).sum())
            self.epoch_seen += len(batch)
            self.state.global_step += 1
            call_hooks(self.callbacks, "on_batch_end", self, epoch, b, batch_loss)
        if self.stop_reason:  # asked for in the last batch's hook
            self.stopped_at = (epoch, self.steps_per_epoch)
            return None
        seconds, seen = time.perf_counter() - self.epoch_started, self.epoch_seen
        correct = int(self.dist.all_reduce_sum(correct)[0])  # seen and losses are global already
        return {
            "train_loss": total_loss / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "epoch_seconds": seconds,
            "images_per_second": seen / seconds if seconds > 0 else 0.0,
        }

    def _validate(self, epoch: int) -> dict[str, Any]:
        """The epoch's validation metrics, as a step of its own: watchers see it run instead of
        the epoch's last batch standing still."""
        name = f"Validating epoch {epoch + 1}"
        with Step(self.emit, "validate", name, len(self.data.rows["val"])) as step:
            logits, labels = self.predict("val", tta=False, progress=step.advance)
        self.last_val_logits = (logits, labels)
        return val_metrics(logits, labels, len(self.classes))

    def predict(
        self, split: str, tta: bool = True, progress: Callable[[int], None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, labels) of a split with the weights being judged (evaluation_pass.py);
        ``tta=False``: the centre view only (each epoch's validation); ``progress(n)``: told
        of each batch of ``n`` images done."""
        return split_logits(self, split, tta, progress)
