"""Optimizer, schedule and gradient scaler from a TrainConfig: config -> keyword arguments ->
factory, the shape of timm's ``create_optimizer_v2(model, **optimizer_kwargs(cfg))``.

The kwargs functions are where the config is read; the factories know nothing of TrainConfig, so
the LR finder, a test or a notebook can build the same optimizer from plain arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from modelkit.config import TrainConfig
from modelkit.models import stages
from modelkit.training import phases

Scheduler = Any  # torch's LRScheduler or ReduceLROnPlateau (no common base class)


def optimizer_kwargs(cfg: TrainConfig, phase: int = 0) -> dict[str, Any]:
    """The optimizer settings of ``cfg`` for a training phase (0: one-phase run, 1 or 2)."""
    lr, backbone_lr = phases.rates(cfg, phase)
    return {
        "opt": cfg.optimizer,
        "lr": lr,
        "backbone_lr": backbone_lr,
        "weight_decay": cfg.weight_decay,
        "momentum": cfg.momentum,
    }


def create_optimizer(
    model: nn.Module,
    arch: str,
    opt: str = "adamw",
    lr: float = 1e-3,
    backbone_lr: float | None = None,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """An optimizer over the trainable parameters, grouped as head and backbone (own rates).

    Fused kernels on a CPU or CUDA device: torch picks its per-tensor loop on a CPU by itself,
    and ResNet-18's update took 18.9 ms (SGD) and 60 ms (AdamW) a step that way on the 2-core
    CPU, 6.8 and 10.3 ms fused (benchmarks: a few percent of a training step)."""
    groups = stages.parameter_groups(model, arch, lr, backbone_lr, weight_decay)
    devices = {p.device.type for g in groups for p in g["params"]}
    fused = {"fused": True} if devices and devices <= {"cpu", "cuda"} else {}
    if opt == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, **fused)
    if opt == "adam":
        return torch.optim.Adam(groups, lr=lr, **fused)
    return torch.optim.AdamW(groups, lr=lr, **fused)


def scheduler_kwargs(
    cfg: TrainConfig, span: int, steps_per_epoch: int, monitor: str
) -> dict[str, Any]:
    """The schedule settings of ``cfg`` for a phase of ``span`` epochs (``RunPlan.span``: the
    time budget may change it); ``monitor`` is the watched metric (the plateau schedule follows
    it: without a val split it is train_loss, not cfg.monitor)."""
    return {
        "sched": cfg.scheduler,
        "epochs": span,
        "steps_per_epoch": steps_per_epoch,
        "step_size": cfg.step_size,
        "gamma": cfg.gamma,
        "plateau_patience": cfg.plateau_patience,
        "mode": "max" if monitor == "val_acc" else "min",
        # one-cycle warms up for 30% of its span by default; warmup_epochs sets that length
        "pct_start": min(cfg.warmup_epochs / max(span, 1), 0.9) if cfg.warmup_epochs else 0.3,
    }


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    sched: str = "none",
    epochs: int = 1,
    steps_per_epoch: int = 1,
    step_size: int = 1,
    gamma: float = 0.1,
    plateau_patience: int = 2,
    mode: str = "min",
    pct_start: float = 0.3,
) -> Scheduler | None:
    """The learning-rate schedule (None for a constant rate). ``onecycle`` steps per batch, the
    others per epoch (see ``steps_per_batch``)."""
    lr_scheduler = torch.optim.lr_scheduler
    if sched == "step":
        return lr_scheduler.StepLR(optimizer, step_size, gamma)
    if sched == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if sched == "onecycle":
        total = max(epochs * steps_per_epoch, 1)
        return lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            pct_start=onecycle_pct_start(pct_start, total),
        )
    if sched == "plateau":
        return lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=gamma, patience=plateau_patience
        )
    return None


def onecycle_pct_start(pct_start: float, total_steps: int) -> float:
    """``pct_start`` moved just enough that each of one-cycle's two phases spans at least one
    step: torch divides by a phase's length, so a warm-up of exactly one step (or of every step)
    in a short run would divide by zero. Runs of under 4 steps get the default 0.3 back."""
    if total_steps < 4:
        return 0.3
    return min(max(pct_start, 2.0 / total_steps), 1.0 - 2.0 / total_steps)


def warmup_factor(step: int, warmup_steps: float) -> float:
    """Linear warmup: the share of the scheduled rate that optimizer step ``step`` (0-based)
    uses, rising from 1/warmup_steps to 1; 1 once the warmup is over (or without one)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


def steps_per_batch(scheduler: Scheduler | None) -> bool:
    """Whether the schedule steps after every batch (rather than after every epoch)."""
    return isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)


def step_epoch(scheduler: Scheduler | None, metrics: dict[str, Any], monitor: str) -> None:
    """The end-of-epoch step of a per-epoch schedule; the plateau schedule reads the metric."""
    if scheduler is None or steps_per_batch(scheduler):
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metrics[monitor])
    else:
        scheduler.step()


def create_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 on CUDA, the only case that needs one."""
    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def head_lr(optimizer: torch.optim.Optimizer) -> float:
    """The head's learning rate (the one the live view and the logs show)."""
    groups = optimizer.param_groups
    head = [g for g in groups if str(g.get("name", "")).startswith("head")]
    return float((head or groups)[0]["lr"])


def optimizer_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    scheduler: Scheduler | None,
    model: nn.Module,
    grad_clip: float = 0.0,
    before_step: Callable[[], None] | None = None,
) -> None:
    """Backward, gradient clipping, optimizer step (scaled for fp16), per-batch schedule step.
    ``before_step`` runs once the gradients are there (the callbacks' hook)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if before_step is not None:
            before_step()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if before_step is not None:
            before_step()
        optimizer.step()
    if steps_per_batch(scheduler):
        scheduler.step()
