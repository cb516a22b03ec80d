"""Searching for settings: ``tune`` (Optuna over learning rate, weight decay, batch size…) and
``lr-find`` (the learning-rate range test). Both take every train flag as a fixed setting."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modelkit.cli.common import EXIT_ERROR, add_config_flags, config_from_args, echo


def _tune(args: argparse.Namespace) -> int:
    from modelkit.tune.results import best_summary, results_text, trial_state
    from modelkit.tune.search import SearchSpace, run_search

    base = config_from_args(args)
    extra = tuple(x.strip() for x in args.search.split(",") if x.strip())
    study_name = args.study or Path(args.data).resolve().name

    def on_trial(t) -> None:
        value = f"{t.value:.3f}" if t.value is not None else "-"
        echo(f"trial {t.number}: {trial_state(t)}, validation accuracy {value}", sys.stderr)

    study = run_search(
        base, study_name, args.trials, args.timeout, args.storage, SearchSpace(extra=extra),
        on_trial=on_trial,
    )  # fmt: skip
    for line in results_text(study):
        echo(line)
    summary = best_summary(study)
    if not summary:
        echo("no trial finished", sys.stderr)
        return EXIT_ERROR
    for line in summary:
        echo(line)
    return 0


def _lr_find(args: argparse.Namespace) -> int:
    from modelkit.training.lr_finder import lr_find

    result = lr_find(config_from_args(args), args.start_lr, args.end_lr, args.steps)
    if args.plot:  # the figure builders live with the app, which has plotly
        from studio.search_figures import lr_figure

        lr_figure(result).write_html(args.plot)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    stop = "the loss diverged" if result.diverged else "reached the end rate"
    echo(f"{len(result.lrs)} steps from {args.start_lr:g}; {stop}", sys.stderr)
    if result.suggestion is None:
        echo("no suggestion: too few steps", sys.stderr)
        return EXIT_ERROR
    echo(f"steepest descent: {result.suggestion:.3g}; minimum / 10: {result.min_lr_div10:.3g}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search learning rate, weight decay, batch size with Optuna")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--trials", type=int, default=10, help="trials to run now (default 10)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after S s")
    p.add_argument("--study", default="", help="study name (default: the data folder's name)")
    p.add_argument(
        "--storage", default=None, help="Optuna storage URL (default sqlite in RUNS/tune/)"
    )
    p.add_argument(
        "--search", default="", help="also search: any of optimizer,dropout,augmentation"
    )
    p.add_argument("--recipe", default="", help="settings preset for the fixed settings")
    add_config_flags(p)  # every train flag, as a fixed setting of each trial
    p.set_defaults(func=_tune)

    p = sub.add_parser("lr-find", help="learning-rate range test: suggests a learning rate")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=100, help="at most (fewer on tiny data)")
    p.add_argument("--plot", help="write the loss-vs-rate plot to this HTML file")
    p.add_argument("--json", action="store_true", help="print the curve and suggestions as JSON")
    p.add_argument("--recipe", default="", help="settings preset")
    add_config_flags(p)
    p.set_defaults(func=_lr_find)
