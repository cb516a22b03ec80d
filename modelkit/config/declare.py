"""The pieces TrainConfig's fields are declared with: one ``setting(...)`` per field.

Each field says once what it is (type, default, range or choices, help, group, whether it is
essential), so validation, the CLI flags and the app's form are generated from the same place
and cannot disagree. ``settings_of(TrainConfig)`` gives them back as ``Setting`` objects.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

GROUPS = (
    "data",
    "model",
    "optimisation",
    "schedule",
    "augmentation",
    "stopping",
    "compute",
    "bookkeeping",
)
# What a string field holds, when the form needs more than a text box: the dataset folder (its
# own widget, above the form), the architecture (the weights widget asks whether its ImageNet
# weights are cached), the starting weights (ImageNet / random / a file), the runs folder (the
# app's by default).
WIDGETS = ("dataset", "architecture", "starting_weights", "runs_folder")


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``1.5h`` or ``1h30m`` (a time budget is said the
    way a person says it). ValueError, naming the text, when it is not a duration."""
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)\s*(min|[smh]?)", text.strip().lower())
    joined = "".join(f"{n}{u}" for n, u in parts)
    if not parts or joined != re.sub(r"\s+", "", text.strip().lower()):
        raise ValueError(f"expected a duration such as 90s, 10m or 1h, got {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


# How a field's text is read when it is more than its type (the CLI's ``--time-budget 10m``).
PARSERS: dict[str, Callable[[str], Any]] = {"duration": parse_duration}


@dataclass(frozen=True)
class Bounds:
    """An interval such as ``[0, 1)``, ``(0, 10]`` or ``[0, inf)``, for numbers (or list items)."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    @classmethod
    def parse(cls, text: str) -> Bounds:
        low, high = (part.strip() for part in text[1:-1].split(","))
        return cls(float(low), float(high), text[0] == "(", text[-1] == ")")

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below  # NaN is in no interval

    def text(self, integer: bool) -> str:
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if integer and not (self.low_open or self.high_open):
            return f"between {_num(self.low)} and {_num(self.high)}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{_num(self.low)}, {_num(self.high)}{right}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def setting(
    default: Any,
    group: str,
    label: str,
    *,
    help: str,
    bounds: str | None = None,
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
    essential: bool = False,
    step: float | None = None,
    widget: str | None = None,
    parse: str | None = None,
) -> Any:
    """A dataclass field carrying its schema: its group, the label the form shows, the help
    (CLI and form). ``bounds``: an interval such as ``"[0, 1)"``
    (for a list, of each item); ``choices``: the allowed values, or a function giving them
    (the architectures live with the models, which import torch); ``parse``: how text input
    is read when it is more than the type (``"duration"``: ``90s``, ``10m``, ``1h``)."""
    assert group in GROUPS and (widget is None or widget in WIDGETS), (group, widget)
    assert parse is None or parse in PARSERS, parse
    meta = dict(
        help=help,
        group=group,
        label=label,
        bounds=Bounds.parse(bounds) if bounds else None,
        choices=choices,
        essential=essential,
        step=step,
        widget=widget,
        parse=parse,
    )
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Setting:
    """One TrainConfig field as the schema declares it."""

    name: str
    hint: Any  # the resolved type: int, float, bool, str, float | None, list[int]
    default: Any
    help: str
    group: str
    label: str
    bounds: Bounds | None
    choices_from: tuple[str, ...] | Callable[[], tuple[str, ...]] | None
    essential: bool
    step: float | None
    widget: str | None
    parse: str | None = None  # a text reader beyond the type (PARSERS), for the CLI

    @property
    def choices(self) -> tuple[str, ...] | None:
        c = self.choices_from
        return tuple(c()) if callable(c) else c

    @property
    def base(self) -> type:
        """The type a value has when set: ``float`` for ``float | None``, ``list`` for lists."""
        if typing.get_origin(self.hint) is list:
            return list
        args = [a for a in typing.get_args(self.hint) if a is not type(None)]
        return args[0] if is_optional(self.hint) else self.hint

    @property
    def optional(self) -> bool:
        return is_optional(self.hint)

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type (its range or choices), or None."""
        if value is None:
            return None
        if self.choices_from is not None and value not in (choices := self.choices):
            return f"{self.name}: {value!r} is not one of {list(choices)}"
        if self.bounds is None:
            return None
        if self.base is list:
            if all(v in self.bounds for v in value):
                return None
            return f"{self.name}: each size must be {self.bounds.text(True)}"
        if value in self.bounds:
            return None
        return f"{self.name}: must be {self.bounds.text(self.base is int)}"


@cache
def settings_of(cls: type) -> tuple[Setting, ...]:
    """The schema of a dataclass declared with ``setting``, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        default = f.default_factory() if callable(f.default_factory) else f.default
        out.append(
            Setting(
                f.name,
                hints[f.name],
                default,
                m["help"],
                m["group"],
                m["label"],
                m["bounds"],
                m["choices"],
                m["essential"],
                m["step"],
                m["widget"],
                m.get("parse"),
            )  # fmt: skip
        )
    return tuple(out)


# -- types: JSON and form input arrive untyped ---------------------------------------------
def is_optional(hint: Any) -> bool:
    return _is_union(hint) and type(None) in typing.get_args(hint)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def accepts_float(hint: Any) -> bool:
    return hint is float or (_is_union(hint) and float in typing.get_args(hint))


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has type ``hint`` (an int is a float, a bool is not a number)."""
    if _is_union(hint):
        return any(matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(matches(v, item) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def hint_name(hint: Any) -> str:
    return str(hint).replace("typing.", "") if typing.get_origin(hint) else hint.__name__


def settings_table(
    settings: tuple[Setting, ...], choices: dict[str, tuple[str, ...]] | None = None
) -> str:
    """A Markdown table of the settings, grouped, for the README (a test keeps it current).
    ``choices`` replaces a setting's own where those depend on the install (the architectures
    whose weight wheels are installed), so that the table does not."""
    rows = ["| group | flag | default | range or choices | what it does |", "|---|---|---|---|---|"]
    for group in GROUPS:
        for i, s in enumerate(s for s in settings if s.group == group):
            if s.base is list:
                default = ",".join(map(str, s.default))
            else:
                default = str(s.default).lower() if s.base is bool else repr(s.default)
            listed = (choices or {}).get(s.name) or s.choices
            allowed = ", ".join(listed) if s.choices_from is not None else ""
            if s.bounds is not None:
                allowed = s.bounds.text(s.base in (int, list))
            flag = "DATA" if s.widget == "dataset" else "--" + s.name.replace("_", "-")
            text = s.help.replace("|", "\\|")
            rows.append(
                f"| {group if i == 0 else ''} | `{flag}` | `{default}` | {allowed} | {text} |"
            )
    return "\n".join(rows)
