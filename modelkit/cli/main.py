"""``python -m modelkit``: everything the app does, from a terminal or a training server.

The parser is made of each subject's ``add_parsers``; ``main`` catches ``ModelkitError`` (and
``OSError``) once and turns it into one ``error: …`` line and an exit code (the convention is
in ``modelkit/cli/__init__.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from modelkit.cli import (
    clean,
    data,
    ensemble,
    label,
    predict,
    report,
    runs,
    search,
    serve,
    studio,
    train,
    use,
)
from modelkit.cli.common import (
    EXIT_ERROR,
    EXIT_USAGE,
    Parser,
    UsageError,
    fail,
    mark_command_start,
)
from modelkit.errors import ModelkitError


def build_parser() -> argparse.ArgumentParser:
    # The installed console script is `modelkit`; from a clone it is `python -m modelkit`.
    prog = "modelkit" if os.path.basename(sys.argv[0]) == "modelkit" else "python -m modelkit"
    parser = Parser(prog=prog, description="Train and use image classifiers on your folders.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subjects = (
        data,
        train,
        use,
        predict,
        report,
        ensemble,
        runs,
        search,
        clean,
        label,
        serve,
        studio,
    )
    for subject in subjects:
        subject.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    mark_command_start(in_process=argv is not None)  # a time budget counts from here
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        return fail(str(exc).replace("\n", "; "), EXIT_USAGE)
    except ModelkitError as exc:
        return fail(str(exc).replace("\n", "; "), EXIT_ERROR)
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        return fail(str(exc).replace("\n", "; "), EXIT_ERROR)
    except OSError as exc:
        return fail(f"{exc.filename or ''}: {exc.strerror or exc}", EXIT_ERROR)
