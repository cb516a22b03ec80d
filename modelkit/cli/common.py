"""What the commands share: exit codes, the usage error, and the config flags made from the
schema, so the CLI never lags behind TrainConfig."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO

from modelkit.config import ConfigError, Setting, TrainConfig, schema
from modelkit.config.declare import PARSERS
from modelkit.errors import ModelkitError
from modelkit.names import printable

EXIT_USAGE, EXIT_ERROR, EXIT_STOPPED = 2, 1, 130  # see modelkit/cli/__init__.py


class UsageError(ModelkitError, ValueError):
    """The command line itself is wrong (exit code 2, like argparse's usage errors)."""


class Parser(argparse.ArgumentParser):
    """Usage mistakes end in one 'error: ...' line like every other error (train's usage text,
    one flag per config field, would otherwise bury the message)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, printable(f"error: {message} (see {self.prog} --help)") + "\n")


def echo(line: object = "", file: TextIO | None = None) -> None:
    """Print one line that may hold a name someone else chose (a run, file, class or folder):
    its control characters are shown as escapes, never acted on by the terminal. Every line
    the commands print goes through here, except JSON (which escapes them itself)."""
    print(printable(line), file=file)


def echo_lines(text: str, file: TextIO | None = None) -> None:
    """``echo`` each line of a report the command composed (its own line breaks kept)."""
    for line in text.split("\n"):
        echo(line, file)


def fail(message: str, code: int) -> int:
    echo(f"error: {message}", sys.stderr)
    return code


# -- config flags -------------------------------------------------------------------------------
def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("", "none") else float(text)


_optional_float.__name__ = "float"  # argparse names the type in "invalid float value"


def _reader(parse: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """A schema parser (``config.declare.PARSERS``) as an argparse type: its message is said."""

    def read(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    read.__name__ = name
    return read


def _parse(s: Setting) -> Callable[[str], Any]:
    if s.parse is not None:
        return _reader(PARSERS[s.parse], s.parse)
    if s.base is bool:
        return _bool
    if s.base is list:
        return _int_list
    if s.optional:
        return _optional_float
    return s.base


def _metavar(s: Setting) -> str | None:
    if s.choices_from is not None and not callable(s.choices_from):
        return "{" + ",".join(s.choices_from) + "}"
    return {bool: "{true,false}", list: "N[,N...]"}.get(s.base)


def _help(s: Setting) -> str:
    facts = []
    if s.bounds is not None:
        facts.append(s.bounds.text(s.base in (int, list)))
    if s.optional:
        facts.append("none: unset")
    default = ",".join(map(str, s.default)) if s.base is list else s.default
    facts.append(f"default: {default!r}" if default == "" else f"default: {default}")
    return f"{s.help} ({'; '.join(facts)})".replace("%", "%%")  # argparse %-formats help


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One ``--flag`` per TrainConfig field (the dataset folder is the positional DATA), with
    the schema's help, choices and range. Values are checked by TrainConfig, so every bad
    setting is named at once."""
    group = p.add_argument_group("training settings (TrainConfig)")
    for s in schema():
        if s.widget == "dataset":
            continue
        flag = "--" + s.name.replace("_", "-")
        group.add_argument(
            flag, dest=s.name, type=_parse(s), default=None, metavar=_metavar(s), help=_help(s)
        )


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The config flags given on the command line."""
    return {
        s.name: getattr(args, s.name) for s in schema() if getattr(args, s.name, None) is not None
    }


# -- datasets by name ---------------------------------------------------------------------------
def add_dataset_flags(p: argparse.ArgumentParser) -> None:
    """``--dataset NAME`` and ``--per-class N``: a built-in dataset instead of DATA."""
    from modelkit.data.named import DATASET_NAMES

    p.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default=None,
        help="a built-in dataset instead of DATA (also accepted as DATA itself when no folder "
        "of that name exists); made under $MODELKIT_DATA_DIR or ./data on first use",
    )
    p.add_argument(
        "--per-class",
        type=int,
        default=None,
        metavar="N",
        help="with a built-in dataset: keep the first N training images of each class",
    )


def resolve_data(args: argparse.Namespace) -> None:
    """Turn ``--dataset NAME`` (or DATA that is a dataset name and no folder) into the folder
    the dataset was made in, so every command after this sees a plain dataset folder."""
    from modelkit.data.named import is_dataset_name, prepare_named_dataset

    name = getattr(args, "dataset", None)
    per_class = getattr(args, "per_class", None)
    if name and args.data:
        raise UsageError(f"give a DATA folder or --dataset {name}, not both")
    if not name and args.data and is_dataset_name(args.data) and not Path(args.data).exists():
        name = args.data
    if per_class is not None and not name:
        raise UsageError("--per-class only applies to a built-in dataset (--dataset NAME)")
    if name:
        args.data = str(prepare_named_dataset(name, per_class=per_class))
        echo(f"note: built-in dataset {name.lower()} is in {args.data}", sys.stderr)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from DATA, ``--recipe`` and the config flags (see ``config_and_notes``)."""
    return config_and_notes(args)[0]


_command_started: float | None = None  # perf_counter() when main() was called with its own argv


def mark_command_start(in_process: bool) -> None:
    """Where this command's clock starts: the process's start when the process is the command
    (``modelkit ...``, ``python -m modelkit ...``), else now (``main([...])`` called from a
    test, a notebook or a long-lived process, whose age is not the command's)."""
    global _command_started
    _command_started = time.perf_counter() if in_process else None


def seconds_since_start() -> float:
    """Seconds since this command started (0 where unknown). Python's start and imports took
    ~3 s of a 2-minute budget on a slow 2-core CPU, uncounted, and such runs ended 3-6% past it
    (benchmarks/results/suite_one_commit_slow_cpu2.json, suite_start_fix_slow_cpu2.json)."""
    if _command_started is not None:
        return time.perf_counter() - _command_started
    try:  # the process's age, from Linux's /proc
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return 0.0


def config_and_notes(
    args: argparse.Namespace, measure: bool = False, say: bool = True
) -> tuple[TrainConfig, list[str], dict[str, Any] | None]:
    """TrainConfig from DATA, ``--recipe`` and the config flags (flags beat the recipe), and
    the notes said on stderr unless ``say`` is off (``--recipe auto``: what it chose and why,
    one line each; ``train`` leaves them to the run's log, which its terminal shows too).

    Without ``--arch`` the architecture is ResNet-18 where its ImageNet weights can be had, else
    the bundled EfficientNet-Lite0 (said on stderr); ImageNet weights that cannot be had stop the
    command here, with a message offering the bundled backbone, not in the middle of a run."""
    from modelkit.recipes import resolve

    resolve_data(args)
    given, started = given_settings(args), 0.0
    if measure and given.get("time_budget"):  # a run starts: its budget is this command's clock
        started = seconds_since_start()
        given["time_budget"] = max(float(given["time_budget"]) - started, 1.0)
    try:
        out = resolve(args.recipe, given, dataset=str(Path(args.data)), measure=measure)
        config = TrainConfig(data_dir=str(Path(args.data)), **out.settings)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    notes = out.note.splitlines()
    if started >= 0.5:
        notes.append(f"the command's start took {started:.0f} s of the time budget")
    probe = out.auto.facts.probe if out.auto and out.auto.facts else None
    for line in notes if say else ():  # a run says them in its log (and on the terminal)
        echo(f"note: {line}", sys.stderr)
    return config, notes, probe.to_dict() if probe else None
