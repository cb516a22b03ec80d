"""Two-phase runs: after the last head-only epoch, unfreeze the backbone and start phase 2 with
a new optimizer and schedule at the fine-tuning rates (``training/phases.py``).

It runs first among the epoch-end callbacks, before the checkpoint is written, so last.pt holds
phase 2's fresh optimizer and a run resumed at the boundary continues exactly like an
uninterrupted one.
"""

from __future__ import annotations

from typing import Any

from modelkit.events import Message
from modelkit.training import phases, stage_cache
from modelkit.training.callbacks.base import PHASE_SWITCH, Callback, Trainer


class PhaseSwitch(Callback):
    order = PHASE_SWITCH

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        cfg = trainer.config
        if not trainer.phase or phases.phase_of(cfg, epoch + 1) == trainer.phase:
            return
        trainer.enter_phase(phases.phase_of(cfg, epoch + 1))
        trainer.features = None  # the backbone trains now: its cached features are stale
        trainer.build_optimisation()
        if trainer.stage_cache is None:  # built with the head's features, or now
            trainer.stage_cache = stage_cache.cache_stages(trainer)
        trainer.state.bad_epochs = 0  # phase 2 gets its full early-stopping patience
        head_lr, backbone_lr = phases.rates(cfg, trainer.phase)
        trainer.emit(
            Message(
                f"phase 2: backbone unfrozen, fine-tuning at lr {head_lr:g} (head) and "
                f"{backbone_lr:g} (backbone)"
            )
        )
