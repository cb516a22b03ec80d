"""How accuracy grows with the labels given: the curve the Label page draws beside the
suggestions, so a person sees whether ten more labels a class are still worth it.

Each point trains the suggestion head (``suggest.pool_log_probs``: the logistic head on the
head's features, ``suggest.reduce``, blended with the labels spread over the folder's neighbour
graph) on ``n`` labelled images a class, drawn at random from the labels given, and scores it on
the labelled images it did not see, hidden from the spread as from the logistic head; the mean
of a few draws is the point. The labels given are the only ground truth there is,
and they lean to the hard images the head asked about, so the curve is an estimate on the
careful side, as the accept bar is. Only classes with more than ``n`` labels take part in a
point (one image at least is held out of each), and a point needs two such classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelkit.labelling import suggest
from modelkit.labelling.suggest import UNLABELLED, blend_spread, head_log_probs, reduce

PER_CLASS = (1, 2, 5, 10, 20, 50, 100)  # labels a class at which the curve is estimated
REPEATS = 3  # random draws per point


@dataclass(frozen=True)
class CurvePoint:
    per_class: int  # labels a class the head was trained on
    labels: int  # labels in all (per_class times the classes that took part)
    accuracy: float  # mean accuracy on the held-out labelled images
    classes: int  # classes that took part
    held_out: int  # images scored, per draw


def accuracy_curve(
    features: np.ndarray,
    labels: np.ndarray,
    per_class: tuple[int, ...] = PER_CLASS,
    repeats: int = REPEATS,
    seed: int = 0,
) -> list[CurvePoint]:
    """One point per ``per_class`` value that the labels given allow (see the module
    docstring); ``labels`` holds a class index per row, -1 (or any negative) for unlabelled."""
    labels = np.asarray(labels, dtype=np.int64)
    known = np.flatnonzero(labels >= 0)
    if not len(known):
        return []
    from threadpoolctl import threadpool_limits

    x = reduce(features)  # as the Labeller makes them
    with threadpool_limits(1):  # as in suggest.suggest: small steps on a busy machine
        graph = suggest.spread_graph(x, labels) if suggest.SPREAD_PRIOR else None
    num_classes = int(labels.max()) + 1
    sizes = np.bincount(labels[known], minlength=num_classes)
    rng = np.random.default_rng(seed)
    out: list[CurvePoint] = []
    for n in per_class:
        taking = np.flatnonzero(sizes > n)
        if len(taking) < 2:
            break
        pool = known[np.isin(labels[known], taking)]
        scores, held = [], 0
        for _ in range(repeats):
            train = np.concatenate(
                [rng.choice(pool[labels[pool] == c], n, replace=False) for c in taking]
            )
            test = np.setdiff1d(pool, train)
            rows = np.r_[train, test]  # the logistic head: only the rows that are used
            given = np.r_[labels[train], np.full(len(test), -1, dtype=np.int64)]
            logistic = head_log_probs(x[rows], given, num_classes)[len(train) :]
            hidden = np.where(labels >= 0, UNLABELLED, labels)  # only the draw's labels spread
            hidden[train] = labels[train]
            guess = blend_spread(logistic, graph, hidden, num_classes, test).argmax(1)
            scores.append(float((guess == labels[test]).mean()))
            held = len(test)
        out.append(CurvePoint(n, n * len(taking), float(np.mean(scores)), len(taking), held))
    return out
