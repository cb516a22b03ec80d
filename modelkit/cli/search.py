"""More ``python -m modelkit`` commands: tune (Optuna search), lr-find, embeddings.

Kept apart from cli.py so each command's code sits in one place; ``cli.build_parser`` calls
``add_parsers`` once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path


def _fixed_settings(args: argparse.Namespace) -> dict:
    from modelkit.config import TrainConfig

    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name != "data_dir" and getattr(args, f.name, None) is not None
    }


def _tune(args: argparse.Namespace) -> int:
    from modelkit.config import TrainConfig
    from modelkit.recipes import resolve_settings
    from modelkit.tune.search import SearchSpace, best_config, run_search, trials_table

    settings, note = resolve_settings(args.recipe, _fixed_settings(args))
    if note:
        print(f"note: {note}", file=sys.stderr)
    base = TrainConfig(data_dir=str(Path(args.data)), **settings)
    extra = tuple(x.strip() for x in args.search.split(",") if x.strip())
    study_name = args.study or Path(args.data).resolve().name

    def on_trial(t) -> None:
        value = f"{t.value:.4f}" if t.value is not None else "-"
        state = t.state.name.lower()
        print(f"trial {t.number}: {state} val_acc={value} {t.params}", file=sys.stderr)

    study = run_search(
        base, study_name, args.trials, args.timeout, args.storage, SearchSpace(extra=extra),
        on_trial=on_trial,
    )  # fmt: skip
    for row in trials_table(study):
        print("  ".join(f"{k}={v}" for k, v in row.items() if v not in (None, "")))
    best = best_config(study)
    if best is None:
        print("no trial completed", file=sys.stderr)
        return 1
    print(f"best: val_acc={study.best_value:.4f} {study.best_params}")
    return 0


def add_parsers(sub, add_config_flags: Callable[[argparse.ArgumentParser], None]) -> None:
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
    add_lr_find_parser(sub, add_config_flags)
    add_embeddings_parser(sub)


def _lr_find(args: argparse.Namespace) -> int:
    import json

    from modelkit.config import TrainConfig
    from modelkit.recipes import resolve_settings
    from modelkit.training.lr_finder import lr_find

    settings, note = resolve_settings(args.recipe, _fixed_settings(args))
    if note:
        print(f"note: {note}", file=sys.stderr)
    cfg = TrainConfig(data_dir=str(Path(args.data)), **settings)
    result = lr_find(cfg, args.start_lr, args.end_lr, args.steps)
    if args.plot:  # the figure builders live with the app, which has plotly
        from studio.search_figures import lr_figure

        lr_figure(result).write_html(args.plot)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    stop = "the loss diverged" if result.diverged else "reached the end rate"
    print(f"{len(result.lrs)} steps from {args.start_lr:g}; {stop}", file=sys.stderr)
    if result.suggestion is None:
        print("no suggestion: too few steps", file=sys.stderr)
        return 1
    print(f"steepest descent: {result.suggestion:.3g}; minimum / 10: {result.min_lr_div10:.3g}")
    return 0


def add_lr_find_parser(sub, add_config_flags: Callable[[argparse.ArgumentParser], None]) -> None:
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


def _embeddings(args: argparse.Namespace) -> int:
    from modelkit.evaluation.embeddings import compute_embeddings, save_embeddings

    emb = compute_embeddings(args.run_dir, args.split, args.checkpoint, args.device)
    try:
        out = save_embeddings(emb, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n, d = emb.features.shape
    print(f"{n} images x {d} features of the {args.split} split", file=sys.stderr)
    print(out)
    return 0


def add_embeddings_parser(sub) -> None:
    p = sub.add_parser("embeddings", help="export penultimate-layer features of a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--out", required=True, help="FILE.csv or FILE.npy (structured: path, label…)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_embeddings)
