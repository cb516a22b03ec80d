"""After a finished run: evaluate the best weights on val (and test) and save what the Evaluate
page shows. A stopped or pruned run is not evaluated (it may be resumed)."""

from __future__ import annotations

from modelkit.evaluation.metrics import evaluate_logits, save_evaluation
from modelkit.events import Message
from modelkit.models.checkpoint import load_checkpoint
from modelkit.training.callbacks.base import Callback, Trainer
from modelkit.training.callbacks.reporter import FINISHED


class FinalEvaluation(Callback):
    main_only = True

    def on_fit_end(self, trainer: Trainer, reason: str) -> None:
        if reason not in FINISHED:
            return
        best = trainer.run_dir / "checkpoints" / "best.pt"
        if best.is_file():
            trainer.eval_model.load_state_dict(load_checkpoint(best)["model"])
        for split in ("val", "test"):
            if len(trainer.data.rows.get(split, [])) == 0:
                continue
            logits, labels = trainer.predict(split)
            ev = evaluate_logits(logits, labels, trainer.classes, trainer.data.paths[split], split)
            save_evaluation(trainer.run_dir, ev)
            trainer.emit(Message(f"{split} accuracy of the best weights: {ev.accuracy:.3f}"))
