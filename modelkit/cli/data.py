"""``check``: a report on a dataset folder before training (classes, counts, bad files)."""

from __future__ import annotations

import argparse
import json

from modelkit.cli.common import UsageError, add_dataset_flags, echo_lines, resolve_data
from modelkit.config import schema


def _check(args: argparse.Namespace) -> int:
    from modelkit.data.report import build_report, format_report
    from modelkit.data.scan import scan_dataset

    if not (args.data or args.dataset):
        raise UsageError("check needs a DATA folder or --dataset NAME")
    resolve_data(args)
    index = scan_dataset(args.data, args.val_ratio, args.test_ratio, args.seed)
    report = build_report(index)
    note = index.layout_note()  # which folder is used for what
    if args.json:
        print(json.dumps({**report.to_dict(), "layout_note": note}, indent=2))
    else:
        head, _, rest = format_report(report).partition("\n\n")
        echo_lines(f"{head}\n{note}\n\n{rest}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    split = {s.name: s for s in schema()}  # the split a training run would make
    p = sub.add_parser("check", help="report on a dataset folder before training")
    p.add_argument(
        "data",
        nargs="?",
        help="dataset folder (DATA/<class>/... or DATA/{train,val,test}/<class>/...), or a "
        "built-in dataset: cifar10, cifar100, digits",
    )
    add_dataset_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--val-ratio", type=float, default=split["val_ratio"].default, help=split["val_ratio"].help
    )
    p.add_argument(
        "--test-ratio",
        type=float,
        default=split["test_ratio"].default,
        help=split["test_ratio"].help,
    )
    p.add_argument("--seed", type=int, default=split["seed"].default, help=split["seed"].help)
    p.set_defaults(func=_check)
