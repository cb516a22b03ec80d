"""Numbers as a person reads them, shared by the pages."""

from __future__ import annotations

from modelkit.progress import duration_text  # the CLI's wording, the same as the app's

__all__ = ["duration_text"]

# A run has two validation accuracies that can differ by a point: the one training measured at
# its best epoch (centre view only) and the one Evaluate measures on the saved weights (with the
# run's test-time augmentation). Each page says which one it shows (issue #29).
TRAINING_ACCURACY = "val accuracy (best epoch)"
TRAINING_ACCURACY_HELP = (
    "Share of the validation images classified correctly at the run's best epoch, as measured "
    "during training (each image seen once, centred). The Evaluate page measures the saved "
    "model again, with the run's test-time augmentation (TTA) if it has one, so its figure can "
    "differ slightly."
)
TTA_WORDS = {
    "flip": "flip TTA",
    "flip_crops": "flip+crop TTA",
}
TTA_HELP = {
    "flip": "each image is also seen mirrored and the two answers are averaged (test-time "
    "augmentation, TTA)",
    "flip_crops": "each image is also seen mirrored and cropped at its corners, and the answers "
    "are averaged (test-time augmentation, TTA)",
}


def tta_text(tta: object) -> str:
    """``flip TTA`` for a run evaluated with test-time augmentation; empty without."""
    return TTA_WORDS.get(str(tta), "")


SPLIT_WORDS = {"val": "validation", "test": "test"}


def accuracy_label(split: str, tta: str) -> str:
    """The Evaluate headline's accuracy, named with what it was measured on (``Val accuracy ·
    flip TTA``), so it does not read as the training figure disagreeing; short enough for a
    metric card, the tooltip (accuracy_help) says the rest."""
    words = f"{'Val' if split == 'val' else SPLIT_WORDS.get(split, split).capitalize()} accuracy"
    return f"{words} · {tta_text(tta)}" if tta_text(tta) else words


def accuracy_help(split: str, tta: str) -> str:
    how = f", where {TTA_HELP[tta]}" if tta in TTA_HELP else ""
    return (
        f"Share of the {SPLIT_WORDS.get(split, split)} images the run's saved best weights "
        f"classify correctly, measured by evaluating them{how}. The Runs page shows "
        f"'{TRAINING_ACCURACY}', measured during training on each image seen once, centred: "
        "the two can differ slightly."
    )


TOP5_HELP = "Share of images whose true class is among the model's five likeliest answers."
F1_HELP = (
    "F1 balances precision (how often an answer is right) and recall (how many of a class are "
    "found); macro: averaged over the classes, each counting equally however many images it has."
)
LOSS_HELP = (
    "Cross-entropy of the calibrated probabilities: the average penalty for the probability "
    "given to the right class. Lower is better; confident mistakes cost most."
)
