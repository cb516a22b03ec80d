"""Reading a run's calibration report (``runs/<id>/calibration.json``) as untrusted input.

The report is what the Evaluate page draws (ECE and NLL before and after, the reliability bins,
the coverage curve it proposes thresholds from). A run folder can be edited by hand, copied from
elsewhere or torn by a crash, and a report with a wrong type, a missing number or curves of
different lengths crashed the page. ``read_report`` checks every field the page reads and says
what is wrong, naming the file; a damaged report is treated as no report, so the page offers to
calibrate again, which writes a good one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelkit.runs.folder import RunFolder, read_json

NUMBERS = ("temperature", "threshold", "ece_before", "ece_after", "nll_before", "nll_after")
CURVES = ("threshold", "coverage", "accuracy")
BIN_NUMBERS = ("low", "high", "confidence", "accuracy")
MAX_POINTS = 100_000  # a stored curve has ~200 points and 15 bins; anything near this is not ours
MAX_SAMPLES = 10**9
_MISSING = object()


@dataclass(frozen=True)
class CalibrationReport:
    """What a run's calibration.json holds: the report when it is usable, else ``problem`` (a
    sentence naming the file) when the file exists but is damaged; neither when there is none."""

    report: dict[str, Any] | None
    problem: str | None = None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _share(value: Any) -> bool:
    return _number(value) and 0.0 <= value <= 1.0


def _bins_problem(name: str, bins: Any) -> str | None:
    if not isinstance(bins, list) or len(bins) > MAX_POINTS:
        return f"{name} is not a list of bins"
    for bin_ in bins:
        if not isinstance(bin_, dict) or not all(_number(bin_.get(k)) for k in BIN_NUMBERS):
            return f"{name} has a bin without its numbers"
        count = bin_.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return f"{name} has a bin whose count is not a whole number"
    return None


def _curve_problem(curve: Any) -> str | None:
    if not isinstance(curve, dict):
        return "curve is not an object"
    lengths = set()
    for key in CURVES:
        values = curve.get(key)
        if not isinstance(values, list) or len(values) > MAX_POINTS:
            return f"curve.{key} is not a list"
        if not all(_share(v) for v in values):
            return f"curve.{key} holds something other than numbers from 0 to 1"
        lengths.add(len(values))
    return None if len(lengths) == 1 else "the curve's lists have different lengths"


def report_problem(report: Any) -> str | None:
    """What makes ``report`` (calibration.json's contents) unusable, or None when it is fine."""
    if not isinstance(report, dict):
        return f"it holds {'null' if report is None else type(report).__name__}, not an object"
    for key in NUMBERS:
        if not _number(report.get(key)):
            return f"{key} is missing or not a number"
    target = report.get("target_accuracy", _MISSING)
    if target is not _MISSING and not _share(target):
        return "target_accuracy is not a number from 0 to 1"
    samples = report.get("samples", 0)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 0 <= samples <= MAX_SAMPLES:
        return "samples is not a whole number of images"
    for key in ("bins_before", "bins_after"):
        problem = _bins_problem(key, report.get(key, []))
        if problem:
            return problem
    return _curve_problem(report.get("curve"))


def read_report(run_dir: str | Path) -> CalibrationReport:
    """The run's calibration report, checked field by field (see ``CalibrationReport``)."""
    path = RunFolder(run_dir).calibration
    if not path.exists() and not path.is_symlink():
        return CalibrationReport(None)
    plain = path.is_file() and not path.is_symlink()  # not a FIFO to block on, nor a link
    report = read_json(path, _MISSING) if plain else _MISSING
    problem = "not a readable JSON file" if report is _MISSING else report_problem(report)
    if problem:
        return CalibrationReport(
            None, f"{path}: damaged calibration file ({problem}); calibrate the run again"
        )
    return CalibrationReport(report)
