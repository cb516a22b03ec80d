"""``report``: write a run's one-file HTML report (opens offline, shares as one file) and print
its path, last, so a script can pick it up."""

from __future__ import annotations

import argparse

from modelkit.cli.common import echo


def _report(args: argparse.Namespace) -> int:
    from modelkit.report import write_report  # late: the report needs torch for Grad-CAM

    echo(write_report(args.run_dir, args.out, args.device))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write a one-file HTML report of a run (data, settings, scores, Grad-CAM, exports)",
        description="Writes RUN_DIR/report.html (or --out FILE): one self-contained HTML file "
        "with no script and nothing loaded from the network. A run without a saved evaluation "
        "is evaluated first, on --device.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument(
        "--out", default=None, metavar="FILE", help="where to write (default: RUN_DIR/report.html)"
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="for evaluating and Grad-CAM (default cpu: a report never competes with training)",
    )
    p.set_defaults(func=_report)
