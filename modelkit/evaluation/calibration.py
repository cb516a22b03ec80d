"""Calibrated confidence and an "unknown" answer, fitted on a run's validation split.

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): one number T
divides every logit; T is fitted by LBFGS on the validation negative log-likelihood. It never
changes which class wins, only how sure the model says it is, so a fine-tuned network's habit of
saying 99% when it is right 80% of the time is corrected without touching accuracy.

The "unknown" threshold is chosen on the same split from the coverage-vs-accuracy curve: the
lowest calibrated confidence at which the images answered (confidence >= threshold) are right at
least ``target`` of the time. Below it the Predictor says ``unknown`` (keeping its labels).

What inference needs (temperature, threshold, target) goes into the checkpoint's ``calibration``
record (plain numbers: it loads with ``weights_only=True`` and ``models.metadata`` checks it); the
report the Evaluate page draws (reliability bins and ECE before and after, the curve) is
``runs/<id>/calibration.json``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from modelkit.atomic import atomic_write_json
from modelkit.errors import ModelkitError
from modelkit.evaluation.calibration_report import read_report
from modelkit.models.checkpoint import load_checkpoint, save_checkpoint
from modelkit.runs.folder import RunFolder

BINS = 15  # Guo et al.'s ECE bins
DEFAULT_TARGET = 0.95
MIN_T, MAX_T = 0.05, 20.0  # a fitted temperature outside this means the split says nothing
CURVE_POINTS = 200


class CalibrationError(ModelkitError, RuntimeError):
    """The run cannot be calibrated (no validation split, no checkpoint); says which."""


@dataclass
class Calibration:
    temperature: float
    threshold: float  # calibrated confidence below which the answer is "unknown"
    target_accuracy: float
    reached: bool  # whether some threshold reaches the target on the split
    coverage: float  # share of the split answered at the threshold
    answered_accuracy: float  # accuracy of the answered images
    split: str
    samples: int
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    bins_before: list[dict[str, float]] = field(default_factory=list)
    bins_after: list[dict[str, float]] = field(default_factory=list)
    curve: dict[str, list[float]] = field(default_factory=dict)  # threshold, coverage, accuracy

    def record(self) -> dict[str, float]:
        """What the checkpoint carries for inference."""
        return {
            "temperature": self.temperature,
            "threshold": self.threshold,
            "target_accuracy": self.target_accuracy,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    return float(F.cross_entropy(logits.float() / temperature, labels.long()))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """T minimising the NLL of ``softmax(logits / T)``: LBFGS on log T, so T stays positive."""
    logits, labels = logits.detach().float().cpu(), labels.detach().long().cpu()
    if len(labels) == 0:
        return 1.0
    if bool((logits.argmax(1) == labels).all()):
        # No mistake to learn from: the NLL keeps falling as T -> 0, which would make the model
        # claim certainty it has not shown. Leave its confidence as trained.
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not math.isfinite(t):
        return 1.0
    return min(max(t, MIN_T), MAX_T)


def reliability(
    confidence: np.ndarray, correct: np.ndarray, bins: int = BINS
) -> list[dict[str, float]]:
    """Equal-width confidence bins: each with its range, count, mean confidence and accuracy."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        out.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": n,
                "confidence": float(confidence[mask].mean()) if n else 0.0,
                "accuracy": float(correct[mask].mean()) if n else 0.0,
            }
        )
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS):
    """ECE: the count-weighted mean |accuracy - confidence| over the reliability bins."""
    total = len(confidence)
    if total == 0:
        return 0.0
    return float(
        sum(
            b["count"] / total * abs(b["accuracy"] - b["confidence"])
            for b in reliability(confidence, correct, bins)
        )
    )


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """For each distinct confidence t (highest first): the share of images with confidence >= t
    (coverage) and their accuracy."""
    order = np.argsort(-confidence, kind="stable")
    conf, ok = confidence[order], correct[order].astype(float)
    answered = np.arange(1, len(conf) + 1)
    accuracy = np.cumsum(ok) / answered
    last = np.r_[conf[1:] != conf[:-1], True]  # the last of each run of equal confidences
    return {
        "threshold": conf[last],
        "coverage": answered[last] / max(len(conf), 1),
        "accuracy": accuracy[last],
    }


MARGIN_Z = 1.0  # the answered images' accuracy must reach the target by this many std errors


def lower_bound(accuracy: np.ndarray, answered: np.ndarray, z: float = MARGIN_Z) -> np.ndarray:
    """Wilson lower bound of an accuracy measured on ``answered`` images."""
    n = np.maximum(answered, 1)
    centre = accuracy + z * z / (2 * n)
    spread = z * np.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def threshold_for_accuracy(
    confidence: np.ndarray, correct: np.ndarray, target: float, z: float = MARGIN_Z
) -> tuple[float, bool]:
    """(threshold, reached): the lowest confidence threshold whose answered images reach
    ``target`` accuracy with a margin (the Wilson lower bound at ``z``), so that new images
    answered at it reach the target too. Without the margin the threshold is the luckiest point
    of a noisy curve and falls short of the target on held-out images
    (benchmarks/results/calibration_caltech101_frozen_lite0.json). When none reaches it, the
    threshold with the best accuracy, and ``reached`` is False."""
    if len(confidence) == 0:
        return 0.0, False
    curve = coverage_curve(np.asarray(confidence, float), np.asarray(correct, bool))
    answered = np.round(curve["coverage"] * len(confidence))
    good = np.flatnonzero(lower_bound(curve["accuracy"], answered, z) >= target)
    if len(good):
        return float(curve["threshold"][good[-1]]), True
    best = int(np.argmax(curve["accuracy"][::-1]))  # ties: the one with more coverage
    return float(curve["threshold"][::-1][best]), False


def answered_at(confidence: np.ndarray, correct: np.ndarray, threshold: float):
    """(coverage, accuracy of the answered) when answering at ``confidence >= threshold``."""
    keep = confidence >= threshold
    n = int(keep.sum())
    coverage = n / len(confidence) if len(confidence) else 0.0
    return coverage, float(correct[keep].mean()) if n else 0.0


def confidences(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0):
    """(max-softmax confidence, correct) as numpy arrays."""
    probs = torch.softmax(logits.float() / temperature, dim=1)
    conf, pred = probs.max(dim=1)
    return conf.numpy().astype(float), (pred == labels.long()).numpy()


def calibrate_logits(
    logits: torch.Tensor, labels: torch.Tensor, target: float = DEFAULT_TARGET, split: str = "val"
) -> Calibration:
    """Fit the temperature and the unknown threshold on one split's raw logits."""
    logits, labels = logits.detach().float().cpu(), labels.detach().long().cpu()
    t = fit_temperature(logits, labels)
    before, ok = confidences(logits, labels)
    after, _ = confidences(logits, labels, t)
    threshold, reached = threshold_for_accuracy(after, ok, target)
    coverage, answered = answered_at(after, ok, threshold)
    curve = coverage_curve(after, ok)
    step = max(1, len(curve["threshold"]) // CURVE_POINTS)
    return Calibration(
        temperature=t,
        threshold=threshold,
        target_accuracy=float(target),
        reached=reached,
        coverage=coverage,
        answered_accuracy=answered,
        split=split,
        samples=len(labels),
        ece_before=expected_calibration_error(before, ok),
        ece_after=expected_calibration_error(after, ok),
        nll_before=nll(logits, labels) if len(labels) else 0.0,
        nll_after=nll(logits, labels, t) if len(labels) else 0.0,
        bins_before=reliability(before, ok),
        bins_after=reliability(after, ok),
        curve={k: [float(v) for v in np.r_[a[::step], a[-1:]]] for k, a in curve.items()},
    )


# -- storing it with the run ----------------------------------------------------------------------
def store_calibration(checkpoint: str | Path, cal: Calibration, run_dir: str | Path) -> None:
    """Write ``cal``'s record into the checkpoint (atomic rewrite) and its report beside the run."""
    RunFolder(run_dir).check_writable()
    payload = load_checkpoint(checkpoint)
    payload["calibration"] = cal.record()
    save_checkpoint(checkpoint, payload)
    atomic_write_json(RunFolder(run_dir).calibration, cal.to_dict())


def set_threshold(run_dir: str | Path, threshold: float, target: float | None = None) -> None:
    """Move a calibrated run's unknown threshold (the Evaluate page's slider, saved)."""
    from modelkit.serving.predictor import resolve_checkpoint

    if not 0.0 <= threshold <= 1.0:
        raise CalibrationError(f"threshold {threshold} is not between 0 and 1")
    RunFolder(run_dir).check_writable()
    checkpoint = resolve_checkpoint(run_dir)
    payload = load_checkpoint(checkpoint)
    record = dict(payload.get("calibration") or {"temperature": 1.0})
    record["threshold"] = float(threshold)
    if target is not None:
        record["target_accuracy"] = float(target)
    payload["calibration"] = record
    save_checkpoint(checkpoint, payload)
    report = read_report(run_dir).report  # a damaged one is left for calibrating again
    if report is not None:
        report["threshold"] = float(threshold)
        if target is not None:
            report["target_accuracy"] = float(target)
        atomic_write_json(RunFolder(run_dir).calibration, report)


def load_report(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's calibration report, or None when it has none or it is damaged (a front end that
    says so asks ``calibration_report.read_report`` for the problem); either way the Evaluate
    page then offers to calibrate, which writes a good report."""
    return read_report(run_dir).report


def calibrate_run(
    run_dir: str | Path, target: float = DEFAULT_TARGET, device: str = "auto"
) -> Calibration:
    """Fit calibration for an existing run on its validation split and store it with the run."""
    from modelkit.evaluation.evaluate import EvaluationError, load_split

    if not 0.0 < target <= 1.0:
        raise CalibrationError(f"target accuracy {target} is not between 0 and 1")
    try:
        images = load_split(run_dir, "val", device=device)
    except EvaluationError as exc:
        raise CalibrationError(f"cannot calibrate: {exc}") from None
    if not images.squares:
        raise CalibrationError(f"{run_dir}: no validation image could be read to calibrate on")
    logits = images.predictor.logits(images.squares)
    cal = calibrate_logits(logits, torch.tensor(images.labels), target)
    store_calibration(images.predictor.checkpoint, cal, run_dir)
    _reevaluate(Path(run_dir), device)
    return cal


def _reevaluate(run_dir: Path, device: str) -> None:
    """Save the run's existing evaluations again with calibrated probabilities."""
    from modelkit.evaluation.evaluate import evaluate_run

    for split in ("val", "test"):
        if RunFolder(run_dir).evaluation_report(split).is_file():
            evaluate_run(run_dir, split, device=device)


def threshold_on_curve(curve: dict[str, list[float]], target: float, samples: int = 0) -> float:
    """The lowest threshold of a stored coverage curve whose answered accuracy reaches ``target``
    (the highest threshold when none does): what the Evaluate page proposes for a new target.
    Given the split's ``samples``, with the same margin as ``threshold_for_accuracy``."""
    thresholds, accuracy = curve.get("threshold") or [0.0], curve.get("accuracy") or [0.0]
    if samples:
        answered = np.round(np.asarray(curve.get("coverage") or [0.0], float) * samples)
        accuracy = list(lower_bound(np.asarray(accuracy, float), answered))
    good = [t for t, a in zip(thresholds, accuracy) if a >= target]
    return float(min(good)) if good else float(max(thresholds))
