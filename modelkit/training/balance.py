"""Class imbalance: which remedy a run uses and why, and the per-class weights it needs.

``auto`` turns on a class-weighted loss when the largest class has more than ``RATIO`` times
the images of the smallest: the weighted loss keeps every image once per epoch (a sampler
repeats the rare ones and skips some common ones), so it is the safer default; ``sampler``
is there for people who prefer balanced batches.

The automatic weights go as 1/sqrt(class size), not 1/size: validation and real use usually
see the classes as often as the folder has them, and full inverse-frequency weights trade
accuracy for the rare classes' recall (1/size lost accuracy against 1/sqrt(size) from scratch:
benchmarks/results/time_to_accuracy_caltech101_scratch_15m_auto_v4_cpu2.json against
time_to_accuracy_caltech101_scratch_15m_auto_sqrt_weights_cpu2.json).
"""

from __future__ import annotations

from collections import Counter

import torch

RATIO = 3.0
# each weighting remedy's exponent: class weight ~ (1 / class size) ** power
POWERS = {"weighted_loss": 1.0, "sqrt_weighted_loss": 0.5, "sampler": 1.0}


def choose(labels: list[int], n_classes: int, mode: str) -> tuple[str, str]:
    """(remedy, the one-line reason the run's log shows): remedy is none, sqrt_weighted_loss,
    weighted_loss or sampler."""
    counts = Counter(labels)
    sizes = [counts.get(c, 0) for c in range(n_classes)]
    present = [s for s in sizes if s] or [1]
    ratio = max(present) / min(present)
    sizes_said = f"largest class {max(present)} images, smallest {min(present)} ({ratio:.1f}x)"
    if mode != "auto":
        return mode, f"class balance: {mode}, as set ({sizes_said})"
    if ratio > RATIO:
        return "sqrt_weighted_loss", (
            f"class balance: sqrt_weighted_loss (weights 1/sqrt(class size)) chosen "
            f"automatically: {sizes_said}, over {RATIO:g}x"
        )
    return "none", f"class balance: none needed ({sizes_said}, at most {RATIO:g}x)"


def class_weights(labels: list[int], n_classes: int, power: float = 1.0) -> torch.Tensor:
    """Inverse-frequency weights to ``power``, mean 1 over the classes present (power 1:
    sklearn's 'balanced')."""
    counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=n_classes).float()
    present = counts > 0
    weights = torch.where(present, counts.clamp(min=1).pow(-power), 0.0)
    return weights * int(present.sum()) / weights.sum()


def epoch_order(
    labels: torch.Tensor, weights: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    """The training rows of one epoch: a shuffle, or (``weights`` per class) as many rows drawn
    with replacement so that each class is drawn about equally often."""
    if weights is None:
        return torch.randperm(len(labels), generator=generator)
    return torch.multinomial(weights[labels], len(labels), replacement=True, generator=generator)
