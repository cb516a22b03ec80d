"""``ensemble``: average 2-3 finished runs into a new run, evaluated, and print its folder last,
so a script can pick it up."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelkit.cli.common import echo


def _ensemble(args: argparse.Namespace) -> int:
    from modelkit.runs.ensemble import build_ensemble_run  # late: it needs torch
    from modelkit.runs.store import load_run

    runs_dir = args.runs_dir or Path(args.runs[0]).parent  # beside its runs by default
    run_dir = build_ensemble_run(args.runs, runs_dir, args.name, args.device)
    acc = load_run(run_dir).best_val_acc
    if isinstance(acc, float):
        echo(f"validation accuracy of the ensemble: {acc:.4f}")
    echo(run_dir)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="make one model of 2-3 finished runs (the mean of their scores), as a new run",
        description="Writes a new run whose model averages the logits of the runs' best "
        "checkpoints, evaluates it on the first run's validation and test splits, and prints "
        "its folder. The runs need the same classes in the same order, and none may have "
        "trained on the first run's validation or test images. The new run predicts, "
        "evaluates, calibrates, exports and serves like any other.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="2 or 3 run folders")
    p.add_argument("--name", default="", help="a name for the new run's folder")
    p.add_argument(
        "--runs-dir", default=None, help="where to write it (default: the first run's folder's)"
    )
    p.add_argument("--device", default="auto", help="for evaluating the ensemble")
    p.set_defaults(func=_ensemble)
