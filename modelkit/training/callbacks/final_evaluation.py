"""After a finished run: evaluate the best weights on val (and test) and save what the Evaluate
page shows. A stopped or pruned run is not evaluated (it may be resumed)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from modelkit.evaluation.metrics import evaluate_logits, save_evaluation
from modelkit.events import Message
from modelkit.models.checkpoint import load_checkpoint
from modelkit.progress import Step
from modelkit.training.callbacks.base import FINAL, Callback, Trainer
from modelkit.training.callbacks.reporter import FINISHED

# the final evaluation's step names, per split
SPLIT_NAMES = {"val": "validation", "test": "test"}


def best_logits(
    trainer: Trainer, split: str, progress: Callable[[int], None] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of ``split`` with the best weights, computed once for the end of the
    run: calibration reads what the final evaluation computed instead of paying for another
    pass over val with the run's TTA. ``progress(n)``: told of each batch of images done."""
    if split not in trainer.best_split_logits:
        trainer.best_split_logits[split] = trainer.predict(split, progress=progress)
    return trainer.best_split_logits[split]


class FinalEvaluation(Callback):
    order = FINAL
    main_only = True

    def on_fit_end(self, trainer: Trainer, reason: str) -> None:
        if reason not in FINISHED:
            return
        best = trainer.run_folder.best
        if best.is_file():
            trainer.eval_model.load_state_dict(load_checkpoint(best)["model"])
        trainer.best_split_logits.clear()  # the weights just loaded are the ones judged
        for split in ("val", "test"):
            if len(trainer.data.rows.get(split, [])) == 0:
                continue
            name = f"Evaluating on the {SPLIT_NAMES.get(split, split)} split"
            n = len(trainer.data.rows[split])
            with Step(trainer.emit, "evaluate", name, n) as step:
                logits, labels = best_logits(trainer, split, step.advance)
                ev = evaluate_logits(
                    logits, labels, trainer.classes, trainer.data.paths[split], split
                )
                save_evaluation(trainer.run_dir, ev)
            trainer.emit(Message(f"{split} accuracy of the best weights: {ev.accuracy:.3f}"))
