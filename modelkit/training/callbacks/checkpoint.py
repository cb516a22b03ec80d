"""Checkpoints: ``best.pt`` when the watched metric improves, ``last.pt`` after every epoch.

``last.pt`` holds everything a resume needs to continue as if the run had never stopped: the
weights, optimizer, schedule and scaler, every random generator, the loop's state
(``LoopState.state_dict()``, at the top level as in every earlier checkpoint) and the state of
the callbacks that keep any. ``restore`` reads it back into a Trainer. Checkpoints are written
atomically, so a kill -9 during a write leaves the previous file whole.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from modelkit.atomic import atomic_write_text
from modelkit.events import CheckpointSaved, Message
from modelkit.models import registry as models
from modelkit.models.checkpoint import save_checkpoint
from modelkit.training.callbacks.base import (
    CHECKPOINT,
    Callback,
    Trainer,
    callback_states,
    load_callback_states,
)


def payload(trainer: Trainer, metrics: dict[str, Any], with_training_state: bool) -> dict:
    """What a checkpoint holds; best.pt leaves out the training state (it is for predicting).
    best.pt's ``model`` holds the weights evaluation judged (the EMA weights when EMA is on);
    last.pt's holds the live weights training continues from (EMA's are in its callbacks)."""
    cfg = trainer.config
    weights = trainer.model if with_training_state else trainer.eval_model
    out: dict[str, Any] = {
        "model": {k: v.detach().cpu() for k, v in weights.state_dict().items()},
        "arch": cfg.arch,
        "classes": list(trainer.classes),
        "config": cfg.to_dict(),
        # inference sees what evaluation saw: the evaluation size and the test-time views
        "preprocess": {
            **models.preprocessing(cfg.eval_size or cfg.image_size, cfg.arch),
            "tta": cfg.tta,
        },
        "epoch": trainer.state.epoch,
        "metrics": metrics,
    }
    if with_training_state:
        out.update(
            optimizer=trainer.optimizer.state_dict(),
            scheduler=trainer.scheduler.state_dict() if trainer.scheduler else None,
            scaler=trainer.scaler.state_dict() if trainer.scaler else None,
            rng={
                "torch": torch.get_rng_state(),
                "data": trainer.generator.get_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            callbacks=callback_states(trainer.callbacks),
            **trainer.state.state_dict(),
        )
    return out


def restore(trainer: Trainer, saved: dict[str, Any]) -> None:
    """Continue from ``last.pt``: weights, optimizer, schedule, scaler, generators, state."""
    trainer.model.load_state_dict(saved["model"])
    trainer.optimizer.load_state_dict(saved["optimizer"])
    if trainer.scheduler is not None and saved.get("scheduler"):
        trainer.scheduler.load_state_dict(saved["scheduler"])
    if trainer.scaler is not None and saved.get("scaler"):
        trainer.scaler.load_state_dict(saved["scaler"])
    rng = saved["rng"]
    torch.set_rng_state(rng["torch"])
    trainer.generator.set_state(rng["data"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    trainer.state.load_state_dict(saved)
    load_callback_states(trainer.callbacks, saved.get("callbacks") or {})
    # metrics.jsonl may hold an epoch written after this checkpoint, or miss one: rebuild it
    # from the checkpoint's history so the curves match the weights we continue from.
    if trainer.dist.is_main:
        lines = "".join(json.dumps(row) + "\n" for row in trainer.state.history)
        atomic_write_text(trainer.run_folder.metrics, lines)
    trainer.emit(Message(f"resumed from last.pt after epoch {trainer.state.epoch}"))


class Checkpoint(Callback):
    order = CHECKPOINT
    main_only = True  # rank 0 writes; every rank holds the same weights

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        folder = trainer.run_folder
        if trainer.state.improved:
            save_checkpoint(folder.best, payload(trainer, metrics, False))
            trainer.emit(CheckpointSaved(str(folder.best), epoch, "best"))
        save_checkpoint(folder.last, payload(trainer, metrics, True))
        trainer.emit(CheckpointSaved(str(folder.last), epoch, "last"))
