"""``runs``: list the runs of a runs folder with their state and best accuracy."""

from __future__ import annotations

import argparse
import json

from modelkit.cli.common import echo


def _runs(args: argparse.Namespace) -> int:
    from modelkit.runs.store import RunStore

    runs = RunStore(args.runs_dir).list()
    if args.json:
        out = [
            {
                "id": r.id,
                "path": str(r.path),
                "state": r.state,
                "arch": r.arch,
                "created": r.created,
                "duration_s": r.duration_s,
                "epochs_done": r.epochs_done,
                "epochs": r.epochs,
                "best": r.best,
                "config": r.config,
                "problem": r.problem,
            }
            for r in runs
        ]
        print(json.dumps(out, indent=2))
        return 0
    if not runs:
        echo(f"no runs in {args.runs_dir}")
        return 0
    echo(f"{'run':<40} {'state':<11} {'epochs':>7} {'best val_acc':>12}  config")
    for r in runs:
        acc = f"{r.best_val_acc:.4f}" if isinstance(r.best_val_acc, (int, float)) else "-"
        about = r.problem or r.summary()  # an unreadable run says why
        echo(f"{r.id:<40} {r.state:<11} {r.epochs_text:>7} {acc:>12}  {about}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list runs with their state and best accuracy")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_runs)
