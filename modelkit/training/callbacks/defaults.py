"""The callbacks (and recording listeners) every run gets; their ``order`` says when each runs.

The training techniques come first (class balance, warmup, progressive resizing, EMA: they act
on the loop itself). At an epoch's end: the phase switch first (last.pt must hold phase 2's
optimizer), then the time budget's decision, then the checkpoints, then the events (EpochEnd is
heard after the checkpoint exists), then early stopping, then the caller's callbacks (the Optuna
pruner). At the fit's end the final evaluation comes before the Finished event, so the run
folder holds the evaluation when listeners hear it; calibration follows the final evaluation (it
reuses the best weights that one loaded).
"""

from __future__ import annotations

from modelkit.data.mixing import MixSettings
from modelkit.events import ListenerFn
from modelkit.runs.recorder import RunRecorder
from modelkit.training import tensorboard_log
from modelkit.training.callbacks.base import Callback, Trainer, in_order
from modelkit.training.callbacks.calibration import Calibrate
from modelkit.training.callbacks.checkpoint import Checkpoint
from modelkit.training.callbacks.early_stopping import EarlyStopping
from modelkit.training.callbacks.ema import EMA
from modelkit.training.callbacks.final_evaluation import FinalEvaluation
from modelkit.training.callbacks.mixing import MixHandler
from modelkit.training.callbacks.phase_switch import PhaseSwitch
from modelkit.training.callbacks.reporter import EventReporter
from modelkit.training.callbacks.techniques import ClassBalance, ProgressiveResize, Warmup
from modelkit.training.callbacks.time_budget import TimeBudget


def technique_callbacks(trainer: Trainer) -> list[Callback]:
    """The training techniques the config turns on (they act before the bookkeeping)."""
    cfg = trainer.config
    callbacks: list[Callback] = [ClassBalance()]
    if cfg.warmup_epochs:
        callbacks.append(Warmup())
    if cfg.progressive_resize:
        callbacks.append(ProgressiveResize())
    if cfg.ema:
        callbacks.append(EMA(cfg.ema_decay))
    mix = MixSettings(cfg.mixup_alpha, cfg.cutmix_alpha, cfg.mix_prob)
    if mix.on:
        callbacks.append(MixHandler(mix))
    return callbacks


def default_callbacks(trainer: Trainer) -> list[Callback]:
    """Every callback of ``trainer``'s run. Adds the run folder's recorder (and TensorBoard) in
    front of the listeners; only rank 0 keeps listeners and ``main_only`` callbacks."""
    cfg, is_main = trainer.config, trainer.dist.is_main
    if trainer.record and is_main:
        recorders: list[ListenerFn] = [RunRecorder(trainer.run_dir)]
        if cfg.tensorboard and tensorboard_log.available():
            recorders.append(tensorboard_log.TensorBoardLogger())
        trainer.listeners[:0] = recorders
    elif not is_main:
        trainer.listeners = []  # only rank 0 records, prints and reports
    saving = [Checkpoint(), FinalEvaluation(), Calibrate()] if trainer.record else []
    budget = [TimeBudget(cfg.time_budget)] if cfg.time_budget else []  # before last.pt is saved
    callbacks = [
        *technique_callbacks(trainer),
        PhaseSwitch(),
        *budget,
        *saving,
        EventReporter(),
        EarlyStopping(cfg.early_stopping_patience),
        *trainer.user_callbacks,
    ]
    return in_order(cb for cb in callbacks if is_main or not cb.main_only)
