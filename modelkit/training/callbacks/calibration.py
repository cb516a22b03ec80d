"""After a finished run's final evaluation: fit temperature scaling and the "unknown" threshold
on the validation split (``modelkit.evaluation.calibration``) and store them in best.pt, so every
prediction from the run is calibrated, then save the val (and test) evaluations again with the
calibrated probabilities, so the Evaluate page shows what the Predictor answers. A run without a
validation split is left as it is."""

from __future__ import annotations

from modelkit.evaluation.calibration import calibrate_logits, store_calibration
from modelkit.evaluation.metrics import evaluate_logits, save_evaluation
from modelkit.events import Message
from modelkit.progress import Step
from modelkit.training.callbacks.base import FINAL, Callback, Trainer
from modelkit.training.callbacks.final_evaluation import best_logits
from modelkit.training.callbacks.reporter import FINISHED


class Calibrate(Callback):
    order = FINAL
    main_only = True

    def on_fit_end(self, trainer: Trainer, reason: str) -> None:
        best = trainer.run_folder.best
        if reason not in FINISHED or not best.is_file():
            return
        if len(trainer.data.rows.get("val", [])) == 0:
            return
        logits, labels = best_logits(trainer, "val")  # FinalEvaluation loaded the best weights
        splits = [s for s in ("val", "test") if len(trainer.data.rows.get(s, []))]
        # its parts: the fit, then each split's evaluation saved again, calibrated
        with Step(trainer.emit, "calibrate", "Calibrating", 1 + len(splits), "parts") as step:
            cal = calibrate_logits(logits, labels)
            store_calibration(best, cal, trainer.run_dir)
            step.advance()
            for split in splits:
                split_logits = logits if split == "val" else best_logits(trainer, split)[0]
                ev = evaluate_logits(
                    split_logits / cal.temperature,
                    labels if split == "val" else trainer.data.labels[split],
                    trainer.classes,
                    trainer.data.paths[split],
                    split,
                )
                save_evaluation(trainer.run_dir, ev)
                step.advance()
        trainer.emit(
            Message(
                f"calibrated: temperature {cal.temperature:.2f}, val ECE {cal.ece_before:.3f} -> "
                f"{cal.ece_after:.3f}; 'unknown' below {cal.threshold:.2f} confidence answers "
                f"{cal.coverage:.0%} of val at {cal.answered_accuracy:.1%} accuracy"
            )
        )
