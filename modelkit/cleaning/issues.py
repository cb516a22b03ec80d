"""Out-of-sample class probabilities from k-fold linear heads, and confident learning on them.

Training k full models to get out-of-sample predictions costs k trainings; a logistic regression
on fixed backbone features costs a fraction of a second per fold and is, on photo folders, close
to what fine-tuning reaches. Confident learning (Northcutt, Jiang & Chuang, 2021) then needs only
the probabilities and the given labels: an image is a likely label error when its probability
for another class reaches that class's threshold (the mean probability the class's own images
get) and beats every other class that does. Reimplemented here in a few lines; the reference
library is AGPL and not a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelkit.errors import ModelkitError
from modelkit.evaluation.folds import out_of_fold


class ScoringError(ModelkitError, ValueError):
    """The dataset cannot be scored as given (too few images or classes)."""


def out_of_fold_probs(
    features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """N x K probabilities, each row from a head that never saw that image."""
    labels = np.asarray(labels)
    present = np.unique(labels)
    if len(present) < 2:
        raise ScoringError("scoring needs images of at least 2 classes")
    sizes = np.bincount(labels)[present]
    # stratified folds need each fold to get a member of a class: as many folds as the smallest
    # class allows, or (classes of one image) as the largest allows
    n_splits = min(int(folds), int(sizes.min() if sizes.min() >= 2 else sizes.max()))
    if n_splits < 2:
        raise ScoringError(
            f"scoring needs at least 2 folds and a class with 2 images or more; got {len(labels)} "
            "images, one per class"
        )
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return out_of_fold(x, labels, num_classes, n_splits, _logistic_head, seed)


def _logistic_head(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    return head.classes_, head.predict_proba


@dataclass
class LabelIssues:
    """Per image: whether confident learning flags it, the label it suggests and a score in
    [0, 1] (the probability of the given label; lower is more suspicious)."""

    flagged: np.ndarray  # N bool
    suggested: np.ndarray  # N int
    self_confidence: np.ndarray  # N float
    margin: np.ndarray  # N float: p(given) - max p(other), in [-1, 1]
    thresholds: np.ndarray  # K float
    confident_joint: np.ndarray  # K x K int: given label (rows) x confident label (columns)

    def ranking(self) -> np.ndarray:
        """Image rows, most likely label errors first: flagged images by normalized margin,
        then the rest by the same score."""
        order = np.lexsort((self.margin, ~self.flagged))
        return order


def confident_learning(probs: np.ndarray, labels: np.ndarray) -> LabelIssues:
    """Per-class thresholds, the confident joint and the off-diagonal images (see module doc)."""
    labels = np.asarray(labels)
    n, k = probs.shape
    thresholds = np.ones(k)
    for j in range(k):
        own = probs[labels == j, j]
        if len(own):
            thresholds[j] = own.mean()
    above = probs >= thresholds[None, :] - 1e-12
    masked = np.where(above, probs, -1.0)
    confident = masked.argmax(1)
    has = above.any(1)
    joint = np.zeros((k, k), dtype=np.int64)
    np.add.at(joint, (labels[has], confident[has]), 1)
    self_conf = probs[np.arange(n), labels]
    others = probs.copy()
    others[np.arange(n), labels] = -1.0
    margin = self_conf - others.max(1)
    flagged = has & (confident != labels)
    suggested = np.where(flagged, confident, others.argmax(1))
    return LabelIssues(flagged, suggested, self_conf, margin, thresholds, joint)
