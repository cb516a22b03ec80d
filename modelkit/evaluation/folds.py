"""Scores from heads that never saw the image they score: the cleaner's confident learning, the
labeller's suggestions and ``auto``'s backbone probe all need them, each with its own head."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

# A head fitted on (features, labels): the classes it knows, and its N x len(classes) scores.
FitHead = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]


def out_of_fold(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    n_splits: int,
    fit: FitHead,
    seed: int = 0,
    fill: float = 0.0,
    certain: float = 1.0,
) -> np.ndarray:
    """N x K scores, each row from ``fit`` on the other stratified folds. Classes a fold's head
    never saw keep ``fill``; a fold that trains on one class can only answer it (``certain``)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.full((len(labels), num_classes), fill, dtype=np.float64)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class smaller than the fold count is fine here
        warnings.simplefilter("ignore", UserWarning)
        parts = list(splitter.split(features, labels))
    for train, held in parts:
        seen = np.unique(labels[train])
        if len(seen) < 2:
            out[np.ix_(held, seen)] = certain
            continue
        classes, predict = fit(features[train], labels[train])
        out[np.ix_(held, classes)] = predict(features[held])
    return out
