"""``clean``: rank likely label errors and near-duplicates in a dataset folder, re-split
near-duplicates, and undo the changes made from here or from the app's Clean page."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modelkit.cli.common import UsageError, echo, echo_lines


def _print_journal(journal) -> None:
    active = journal.active()
    for skipped in journal.skipped:  # malformed lines: named, the rest still listed
        echo(skipped, sys.stderr)
    if not active:
        echo(f"{journal.path}: no changes to undo")
    for e in active:
        echo(f"#{e.id:<4} {e.action:<8} {e.src} -> {e.dst}")


def _undo(args: argparse.Namespace) -> int:
    from modelkit.cleaning.journal import Journal

    journal = Journal(args.data)
    undone = journal.undo_all() if args.undo_all else [journal.undo(args.undo)]
    for e in undone:
        echo(f"undid #{e.undoes} ({e.note}): {e.src} -> {e.dst}")
    if not undone:
        echo(f"{journal.path}: nothing to undo")
    return 0


def _clean(args: argparse.Namespace) -> int:
    from modelkit.cleaning.finder import find_issues, format_report, resplit
    from modelkit.cleaning.journal import Journal

    if args.undo is not None and args.undo_all:
        raise UsageError("give --undo N or --undo-all, not both")
    if args.undo is not None or args.undo_all:
        return _undo(args)
    if args.journal:
        _print_journal(Journal(args.data))
        return 0
    if args.run and args.features != "pretrained":
        raise UsageError("--run embeds with the run's model; leave out --features")
    if args.folds < 2:
        raise UsageError(f"--folds must be at least 2, got {args.folds}")

    def progress(stage: str, frac: float) -> None:
        if not args.json:
            print(f"\r{stage:<10} {frac:4.0%}", end="", file=sys.stderr, flush=True)

    report = find_issues(
        args.data,
        args.run or args.features,
        args.folds,
        args.threshold,
        args.seed,
        args.val_ratio,
        args.test_ratio,
        progress=progress,
    )
    if not args.json:
        print(file=sys.stderr)
    if args.csv:
        Path(args.csv).write_text(report.to_csv(), encoding="utf-8")
    moved = resplit(report, Journal(args.data)) if args.resplit else []
    if args.json:
        out = report.to_dict(args.top)
        out["resplit"] = [e.to_dict() for e in moved]
        print(json.dumps(out, indent=2))
        return 0
    echo_lines(format_report(report, args.top))
    for e in moved:
        echo(f"re-split #{e.id}: {e.src} -> {e.dst}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from modelkit.cleaning.duplicates import DEFAULT_THRESHOLD
    from modelkit.config import schema

    p = sub.add_parser(
        "clean",
        help="rank likely label errors and near-duplicates; undo changes",
        description="Scores every image out of sample (k-fold linear heads on backbone "
        "features), ranks likely label errors by confident learning and groups near-duplicates. "
        "Changes (from --resplit or the app's Clean page) are journalled in "
        "DATA/.modelkit-journal.jsonl and undone with --undo N / --undo-all.",
    )
    p.add_argument("data", help="dataset folder")
    p.add_argument(
        "--run",
        default="",
        help="embed with this run's model (default: bundled ImageNet EfficientNet-Lite0)",
    )
    p.add_argument(
        "--features",
        choices=("pretrained", "pixels"),
        default="pretrained",
        help="without --run: the bundled backbone, or colour thumbnails (no model)",
    )
    p.add_argument("--folds", type=int, default=5, help="k of the k-fold heads (default 5)")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20)")
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"cosine similarity of near-duplicates (default {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--csv", default="", metavar="OUT", help="write every ranked image to OUT")
    p.add_argument(
        "--resplit",
        action="store_true",
        help="move each near-duplicate group across splits into one split "
        "(train/val folders only; journalled)",
    )
    p.add_argument("--journal", action="store_true", help="list the changes that can be undone")
    p.add_argument("--undo", type=int, metavar="N", help="undo change #N of the journal")
    p.add_argument("--undo-all", action="store_true", help="undo every change, newest first")
    split = {s.name: s for s in schema()}  # the split a training run would make
    for name in ("val_ratio", "test_ratio", "seed"):
        kind = int if name == "seed" else float
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=kind, default=split[name].default, help=split[name].help)
    p.set_defaults(func=_clean)
