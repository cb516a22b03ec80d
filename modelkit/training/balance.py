"""Class imbalance: which remedy a run uses and why, and the per-class weights it needs.

``auto`` turns on a class-weighted loss when the largest class has more than ``RATIO`` times
the images of the smallest: the weighted loss keeps every image once per epoch (a sampler
repeats the rare ones and skips some common ones), so it is the safer default; ``sampler``
is there for people who prefer balanced batches.
"""

from __future__ import annotations

from collections import Counter

import torch

RATIO = 3.0


def choose(labels: list[int], n_classes: int, mode: str) -> tuple[str, str]:
    """(remedy, the one-line reason the run's log shows): remedy is none, weighted_loss or
    sampler."""
    counts = Counter(labels)
    sizes = [counts.get(c, 0) for c in range(n_classes)]
    present = [s for s in sizes if s] or [1]
    ratio = max(present) / min(present)
    sizes_said = f"largest class {max(present)} images, smallest {min(present)} ({ratio:.1f}x)"
    if mode != "auto":
        return mode, f"class balance: {mode}, as set ({sizes_said})"
    if ratio > RATIO:
        return "weighted_loss", (
            f"class balance: weighted_loss chosen automatically: {sizes_said}, over {RATIO:g}x"
        )
    return "none", f"class balance: none needed ({sizes_said}, at most {RATIO:g}x)"


def class_weights(labels: list[int], n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the classes present (sklearn's 'balanced')."""
    counts = torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=n_classes).float()
    present = int((counts > 0).sum())
    weights = torch.where(counts > 0, len(labels) / (present * counts.clamp(min=1)), 0.0)
    return weights


def epoch_order(
    labels: torch.Tensor, weights: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    """The training rows of one epoch: a shuffle, or (``weights`` per class) as many rows drawn
    with replacement so that each class is drawn about equally often."""
    if weights is None:
        return torch.randperm(len(labels), generator=generator)
    return torch.multinomial(weights[labels], len(labels), replacement=True, generator=generator)
