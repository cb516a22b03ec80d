"""Does a run's calibration hold up? Temperature scaling and the "unknown" threshold, measured.

A finished run fits T and the threshold on its whole validation split (issue #14), so the numbers
it stores describe the very images they were fitted on. This script reports them (a, checking it
gets the T of ``calibration.json``), then fits T and the threshold again on a seeded stratified
half A of val and measures them on the other half B (b): whether ECE and NLL drop on images the
fit never saw, and whether A's threshold still gives the target accuracy on B's answered images.

    python benchmarks/bench_calibration.py runs/<id> [runs/<id> ...] [--target 0.95] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from modelkit.evaluation.calibration import (  # noqa: E402
    answered_at,
    calibrate_logits,
    confidences,
    expected_calibration_error,
    fit_temperature,
    load_report,
    nll,
    threshold_for_accuracy,
)
from modelkit.evaluation.evaluate import load_split  # noqa: E402

T_TOLERANCE = 0.02  # relative: the run's logits came from its trainer, these from a Predictor


def val_logits(run_dir: Path, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw (uncalibrated) logits and labels of the run's validation split, as evaluate_run's."""
    images = load_split(run_dir, "val", device=device)
    return images.predictor.logits(images.squares), torch.tensor(images.labels, dtype=torch.long)


def halves(labels: torch.Tensor, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified halves (A, B): B gets n // 2 of each class's n images, A the rest."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for c in np.unique(labels.numpy()):
        idx = rng.permutation(np.flatnonzero(labels.numpy() == c))
        b.extend(idx[: len(idx) // 2])
        a.extend(idx[len(idx) // 2 :])
    return np.sort(np.array(a, dtype=int)), np.sort(np.array(b, dtype=int))


def scores(logits: torch.Tensor, labels: torch.Tensor, t: float) -> dict[str, float]:
    """ECE and NLL before (T = 1) and after dividing the logits by ``t``."""
    before, ok = confidences(logits, labels)
    after, _ = confidences(logits, labels, t)
    return {
        "ece_before": expected_calibration_error(before, ok),
        "ece_after": expected_calibration_error(after, ok),
        "nll_before": nll(logits, labels),
        "nll_after": nll(logits, labels, t),
    }


def full_val(logits: torch.Tensor, labels: torch.Tensor, target: float, stored: Any) -> dict:
    """(a) What the run itself stores: everything fitted and measured on all of val."""
    cal = calibrate_logits(logits, labels, target)
    stored_t = stored["temperature"] if stored else None
    return {
        "samples": cal.samples,
        "accuracy": float((logits.argmax(1) == labels).float().mean()),
        "temperature": cal.temperature,
        "stored_temperature": stored_t,
        "temperature_matches": stored_t is not None
        and abs(cal.temperature - stored_t) <= T_TOLERANCE * stored_t,
        **{k: getattr(cal, k) for k in ("ece_before", "ece_after", "nll_before", "nll_after")},
        "threshold": cal.threshold,
        "coverage": cal.coverage,
        "answered_accuracy": cal.answered_accuracy,
        "reached": cal.reached,
    }


def held_out(logits: torch.Tensor, labels: torch.Tensor, target: float, seed: int) -> dict:
    """(b) T and the threshold fitted on half A, measured on half B."""
    a, b = halves(labels, seed)
    t = fit_temperature(logits[a], labels[a])
    conf_a, ok_a = confidences(logits[a], labels[a], t)
    threshold, reached_on_a = threshold_for_accuracy(conf_a, ok_a, target)
    conf_b, ok_b = confidences(logits[b], labels[b], t)
    coverage, accuracy = answered_at(conf_b, ok_b, threshold)
    return {
        "fit_samples": len(a),
        "test_samples": len(b),
        "temperature": t,
        "threshold": threshold,
        "reached_on_fit": reached_on_a,
        "fit": scores(logits[a], labels[a], t),
        "test": scores(logits[b], labels[b], t),
        "test_coverage": coverage,
        "test_answered_accuracy": accuracy,
        "target_met": bool(coverage > 0 and accuracy >= target),
    }


def bench(run_dir: Path, target: float, seed: int, device: str) -> dict:
    logits, labels = val_logits(run_dir, device)
    return {
        "run": str(run_dir),
        "target": target,
        "seed": seed,
        "val": full_val(logits, labels, target, load_report(run_dir)),
        "held_out": held_out(logits, labels, target, seed),
    }


def _row(name: str, t: float, s: dict, threshold: float, cov: float, acc: float, met: bool) -> str:
    return (
        f"  {name:26} {t:6.3f} {s['ece_before']:10.4f} {s['ece_after']:6.4f}"
        f" {s['nll_before']:10.4f} {s['nll_after']:6.4f} {threshold:6.3f} {cov:6.1%} {acc:6.1%}"
        f"  {met}"
    )


def show(r: dict) -> None:
    v, h = r["val"], r["held_out"]
    stored = "none" if v["stored_temperature"] is None else f"{v['stored_temperature']:.3f}"
    print(f"\n{r['run']}  (target {r['target']:.0%}, seed {r['seed']})")
    print(
        f"  val: {v['samples']} images, accuracy {v['accuracy']:.1%}, T {v['temperature']:.3f}"
        f" (calibration.json {stored}, match {v['temperature_matches']})"
    )
    print(
        f"  {'':26} {'T':>6} {'ECE before':>10} {'after':>6} {'NLL before':>10} {'after':>6}"
        f" {'thresh':>6} {'cover':>6} {'acc':>6}  target met"
    )
    whole = (v["temperature"], v, v["threshold"], v["coverage"], v["answered_accuracy"])
    print(_row("all val (fit = measure)", *whole, v["reached"]))
    name = f"A {h['fit_samples']} fit, B {h['test_samples']}"
    half = (h["temperature"], h["test"], h["threshold"], h["test_coverage"])
    print(_row(name, *half, h["test_answered_accuracy"], h["target_met"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    results = [bench(run, args.target, args.seed, args.device) for run in args.runs]
    for r in results:
        show(r)
    if args.json:
        args.json.write_text(json.dumps({"runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
