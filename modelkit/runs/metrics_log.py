"""A run's metrics.jsonl, one JSON object per finished epoch, read as untrusted input.

Its own module because more than the run list reads it: the pages draw curves from it, and an
ensemble's description reads its members' best epoch from it when their status.json has none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelkit.runs.folder import RunFolder, read_json, read_run_file
from modelkit.runs.validate import metrics_row_problem


def metric_rows(run_dir: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """The well-formed rows, and the first problem with a row that parsed but has wrong types."""
    path = RunFolder(run_dir).metrics
    rows: list[dict[str, Any]] = []
    problem = None
    try:
        lines = read_run_file(path).decode("utf-8", errors="replace").splitlines()
    except OSError:
        return rows, None
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn by a kill mid-write
        if not isinstance(row, dict) or "epoch" not in row:
            continue
        bad = metrics_row_problem(row)
        if bad is None:
            rows.append(row)
        elif problem is None:
            problem = f"{path.name} line {n}: {bad}"
    return rows, problem


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """One dict of numbers per epoch; a torn, garbled or wrongly typed line is skipped."""
    return metric_rows(run_dir)[0]


def best_row(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """The epoch with the highest val_acc (the last epoch when none has one; {} for none)."""
    with_val = [m for m in metrics if m.get("val_acc") is not None]
    if with_val:
        return max(with_val, key=lambda m: m["val_acc"])
    return metrics[-1] if metrics else {}


def recorded_best(run_dir: str | Path) -> dict[str, Any]:
    """The run's best epoch as it recorded it: status.json's ``best``, else the best row of
    its metrics (a run whose status has none); {} when neither says."""
    status = read_json(RunFolder(run_dir).status, {})
    best = status.get("best") if isinstance(status, dict) else None
    if not isinstance(best, dict) or "val_acc" not in best:
        best = best_row(read_metrics(run_dir))
    return best if isinstance(best, dict) else {}


def recorded_val_acc(run_dir: str | Path) -> float | None:
    """``recorded_best``'s validation accuracy when it is a number (a run list, an ensemble's
    members and auto's choice between a run and its longer run read it)."""
    acc = recorded_best(run_dir).get("val_acc")
    return float(acc) if isinstance(acc, (int, float)) and not isinstance(acc, bool) else None
