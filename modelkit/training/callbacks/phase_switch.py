"""Two-phase fine-tuning in one callback (Lightning's ``BaseFinetuning``): before training it
enters the phase the run is in (the head alone on a frozen backbone, or fine-tuning); after the
last head-only epoch it unfreezes the backbone and starts phase 2 with a new optimizer and
schedule at the fine-tuning rates (``training/phases.py``), and the caches of the phase.

It runs first among the epoch-end callbacks, before the checkpoint is written, so last.pt holds
phase 2's fresh optimizer and a run resumed at the boundary continues exactly like an
uninterrupted one.
"""

from __future__ import annotations

from typing import Any

from modelkit.events import Message
from modelkit.training import phases
from modelkit.training.callbacks.base import PHASE_SWITCH, Callback, Trainer
from modelkit.training.inputs import build_caches


class PhaseSwitch(Callback):
    order = PHASE_SWITCH

    def setup(self, trainer: Trainer) -> None:
        # a resumed run re-enters the phase of its next epoch (the loop's state is loaded)
        trainer.enter_phase(trainer.plan.phase_of(trainer.state.epoch))

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        cfg = trainer.config
        if not trainer.phase or trainer.plan.phase_of(epoch + 1) == trainer.phase:
            return
        trainer.enter_phase(trainer.plan.phase_of(epoch + 1))
        trainer.build_optimisation()
        build_caches(trainer)  # the backbone trains now: its cached features are dropped
        trainer.state.bad_epochs = 0  # phase 2 gets its full early-stopping patience
        head_lr, backbone_lr = phases.rates(cfg, trainer.phase)
        trainer.emit(
            Message(
                f"phase 2: backbone unfrozen, fine-tuning at lr {head_lr:g} (head) and "
                f"{backbone_lr:g} (backbone)"
            )
        )
