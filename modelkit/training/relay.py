"""A schedule laid out again over a run's new length, from where training is: the time budget
changes the epochs while the rate is under way, and the rate must not jump."""

from __future__ import annotations

import math

from torch.optim import lr_scheduler

from modelkit.training import optim
from modelkit.training.view import TrainerView as Trainer


def relay_schedule(trainer: Trainer) -> None:
    """Lay the schedule of the current phase out over the plan's epochs, in place and from where
    training is: the rate goes on from the value it has now and reaches its end at the new last
    epoch. Built again over the new length and brought to where training is, a longer schedule
    would put a falling rate back up, a shorter one drop it at once. The optimizer and its
    momentum stay."""
    scheduler = trainer.scheduler
    span = max(trainer.plan.span(trainer.phase), 1)
    if isinstance(scheduler, lr_scheduler.CosineAnnealingLR):
        # torch's recursive form goes on from the rate the optimizer holds and reaches eta_min
        # at T_max, whatever T_max was before
        scheduler.T_max = span
    elif isinstance(scheduler, lr_scheduler.OneCycleLR):
        total = span * trainer.steps_per_epoch
        kwargs = optim.scheduler_kwargs(
            trainer.config, span, trainer.steps_per_epoch, trainer.monitor
        )
        rise_share = optim.onecycle_pct_start(kwargs["pct_start"], total)
        _relay_onecycle(scheduler, total, float(rise_share * total) - 1)


def _relay_onecycle(scheduler: lr_scheduler.OneCycleLR, total: int, rise_end: float) -> None:
    """Give a one-cycle schedule ``total`` steps. While its rate rises the peak moves to
    ``rise_end`` (the warm-up stays its share of the run, but never behind the step under way);
    once it falls the peak stays where it was. The rate of each group is kept: the cosine it
    rises along starts lower, or the one it falls along from a moved peak, so that it passes
    through the rate the group has now."""
    step, (rise, fall) = scheduler.last_epoch, scheduler._schedule_phases[:2]
    if step < rise["end_step"]:  # still rising
        rise["end_step"] = max(rise_end, float(step))
    scheduler.total_steps = total
    fall["end_step"] = float(total - 1)
    for group in scheduler.optimizer.param_groups:
        if step < rise["end_step"]:  # rising from ``initial_lr`` to ``max_lr``
            left = (1 + math.cos(math.pi * step / rise["end_step"])) / 2
            group["initial_lr"] = group["max_lr"] + (group["lr"] - group["max_lr"]) / left
        elif step < fall["end_step"]:  # falling from ``max_lr`` to ``min_lr``
            share = (step - rise["end_step"]) / (fall["end_step"] - rise["end_step"])
            left = (1 + math.cos(math.pi * share)) / 2
            group["max_lr"] = group["min_lr"] + (group["lr"] - group["min_lr"]) / left
