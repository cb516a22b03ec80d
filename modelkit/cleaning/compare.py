"""Two runs side by side, typically before and after cleaning: accuracy with a bootstrap
confidence interval and the per-class F1 change.

A few hundred validation images give accuracies that move by several points from one sample of
images to the next, so a difference between runs means little without its interval; the
percentile bootstrap over the evaluated images gives one without assumptions about the model.
Note that after a relabel the two runs may be judged on different labels (the fixed ones): the
comparison says which split each was evaluated on and how many images it had.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelkit.evaluation.metrics import Evaluation, load_evaluation


@dataclass
class RunScore:
    run: str
    images: int
    accuracy: float
    low: float  # bootstrap interval
    high: float


@dataclass
class Comparison:
    split: str
    level: float
    before: RunScore
    after: RunScore
    per_class: list[dict]  # class, f1_before, f1_after, delta (None where a run lacks the class)


def bootstrap_interval(
    correct: np.ndarray, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``correct`` (0/1 per image)."""
    correct = np.asarray(correct, dtype=np.float64)
    if len(correct) == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = rng.choice(correct, size=(resamples, len(correct)), replace=True).mean(1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def _evaluation(run: Path, split: str) -> Evaluation:
    ev = load_evaluation(run, split)
    if ev is None or not ev.predictions:
        from modelkit.evaluation.evaluate import evaluate_run

        ev = evaluate_run(run, split)
    return ev


def _score(run: Path, ev: Evaluation, level: float) -> RunScore:
    correct = np.array([bool(p["correct"]) for p in ev.predictions])
    low, high = bootstrap_interval(correct, level=level)
    acc = float(correct.mean()) if len(correct) else 0.0
    return RunScore(run.name, len(correct), acc, low, high)


def compare_runs(
    before: str | Path, after: str | Path, split: str = "val", level: float = 0.95
) -> Comparison:
    """Compare two runs on their own ``split`` (evaluating a run first if it has no saved
    evaluation of it)."""
    a, b = Path(before), Path(after)
    ev_a, ev_b = _evaluation(a, split), _evaluation(b, split)
    f1_a = {r["class"]: r["f1"] for r in ev_a.per_class}
    f1_b = {r["class"]: r["f1"] for r in ev_b.per_class}
    rows = []
    for cls in list(dict.fromkeys([*ev_a.classes, *ev_b.classes])):
        fa, fb = f1_a.get(cls), f1_b.get(cls)
        delta = fb - fa if fa is not None and fb is not None else None
        rows.append({"class": cls, "f1_before": fa, "f1_after": fb, "delta": delta})
    return Comparison(split, level, _score(a, ev_a, level), _score(b, ev_b, level), rows)
