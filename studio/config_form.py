"""The Train form, generated from TrainConfig's schema: no field is written out by hand here.

The essentials (architecture, starting weights, epochs, image size, batch size, learning rate)
are visible; every other field sits in a collapsed expander per group, with its help. The
dataset folder is one widget of its own (``dataset_input``), drawn above the form so a page can
check the path before anything else. Widgets have no keys: their defaults (a recipe's values, the
learning-rate finder's suggestion) make a new widget when they change, so the form shows them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from modelkit.config import GROUPS, ConfigError, Setting, TrainConfig, schema
from modelkit.models.registry import imagenet_weights_cached
from studio.budget_input import EXAMPLES, budget_text, is_duration, parse_budget

WEIGHT_CHOICES = {"ImageNet": "imagenet", "Random (from scratch)": "none"}
FROM_FILE = "File or run folder"
WEIGHTS_PATH_LABEL = "Weights file or run folder"


def _dataset_setting() -> Setting:
    return next(s for s in schema() if s.widget == "dataset")


def dataset_input(value: str) -> str:
    """The dataset folder text box (label "Dataset folder"); outside the form, so choosing a
    folder updates the page at once."""
    s = _dataset_setting()
    return st.text_input(
        s.label, value=value, help=f"Chosen on the Dataset page, or type a path. {s.help}"
    )


def dataset_of(config: TrainConfig) -> str:
    return getattr(config, _dataset_setting().name)


class ConfigForm:
    """The form's widgets, drawn inside an ``st.form`` in two parts so a page can put its
    buttons between them: ``essentials()`` (visible) and ``sections()`` (one collapsed expander
    per group). ``build`` turns what they returned into a TrainConfig.

    ``defaults``: values that replace the schema's (a recipe, a suggestion); the runs folder
    defaults to the app's ``runs_dir``. ``drawn_elsewhere``: settings the page gives a control
    of its own (the Train page's time budget, next to the recipe): not drawn again, so there is
    one place to set each, and built with the values given."""

    def __init__(
        self,
        defaults: Mapping[str, Any],
        runs_dir: Path,
        drawn_elsewhere: Mapping[str, Any] | None = None,
    ) -> None:
        self.start = {s.name: s.default for s in schema()}
        self.start.update({s.name: str(runs_dir) for s in schema() if s.widget == "runs_folder"})
        self.start.update(defaults)
        self.raw: dict[str, Any] = dict(drawn_elsewhere or {})
        self.fields = [s for s in schema() if s.widget != "dataset" and s.name not in self.raw]

    def essentials(self) -> None:
        _grid([s for s in self.fields if s.essential], self.start, self.raw, columns=4)

    def sections(self) -> None:
        for group in GROUPS:
            members = [s for s in self.fields if s.group == group and not s.essential]
            if members:
                title = f"{group.capitalize()} · {len(members)} setting{'s' * (len(members) > 1)}"
                with st.expander(title, expanded=False):
                    _grid(members, self.start, self.raw, columns=3)

    def build(self, dataset: str) -> TrainConfig:
        """The config of the form with ``dataset`` as the data folder; ConfigError names every
        problem at once, by its label."""
        values: dict[str, Any] = {_dataset_setting().name: str(Path(dataset).expanduser())}
        problems = []
        for s in schema():
            if s.name not in self.raw:
                continue
            try:
                values[s.name] = _value(s, self.raw[s.name])
            except ValueError as exc:
                problems.append(f"{s.name}: {exc}")
        try:  # a field that did not parse keeps its default here: its problem is listed already
            config = TrainConfig(**values)
        except ConfigError as exc:
            problems += str(exc).splitlines()
        if problems:
            raise ConfigError("\n".join(_labelled(p) for p in problems))
        return config


def _labelled(problem: str) -> str:
    """'epochs: must be …' → 'Epochs (epochs): must be …': the form shows labels."""
    name, _, rest = problem.partition(":")
    by_name = {s.name: s.label for s in schema()}
    return f"{by_name[name]} ({name}):{rest}" if name in by_name else problem


def _value(s: Setting, raw: Any) -> Any:
    """A widget's value as the field's type."""
    if s.widget == "starting_weights":
        choice, path = raw
        if choice in WEIGHT_CHOICES:
            return WEIGHT_CHOICES[choice]
        if not path.strip():
            raise ValueError("give a file or run folder, or choose ImageNet or Random")
        return path.strip()
    if is_duration(s) and isinstance(raw, str):
        return parse_budget(raw)
    if s.base is list:
        try:
            return [int(x) for x in raw.split(",") if x.strip()] or list(s.default)
        except ValueError:
            raise ValueError(f"expected numbers separated by commas, got {raw!r}") from None
    if raw is None or s.base in (bool, str):
        return raw
    return s.base(raw)


def field_input(name: str, value: Any, cell: Any, label: str | None = None) -> Any:
    """One field's widget on its own, in ``cell`` (the Tune page's epochs of the full run):
    the schema's range and help, ``label`` if the page needs its own."""
    s = next(s for s in schema() if s.name == name)
    s = dataclasses.replace(s, label=label or s.label)
    return _value(s, _widget(s, {name: value}, iter([cell])))


def _grid(settings: list[Setting], start: Mapping[str, Any], raw: dict, columns: int) -> None:
    cells = _cells(columns)
    for s in settings:
        raw[s.name] = _widget(s, start, cells)


def _cells(columns: int) -> Iterator:
    """Columns, a new row of them whenever one is full."""
    while True:
        yield from st.columns(columns)


def _widget(s: Setting, start: Mapping[str, Any], cells: Iterator) -> Any:
    """One field's widget, chosen from its type, choices and kind."""
    cell, value = next(cells), start[s.name]
    if s.widget == "starting_weights":
        return _weights(s, start, cell, next(cells))
    if is_duration(s):  # typed as on the command line: 10m, 90s
        return cell.text_input(s.label, budget_text(value), help=f"{s.help} Typed as {EXAMPLES}.")
    if s.choices_from is not None:
        options = list(s.choices)
        index = options.index(value) if value in options else 0
        return cell.selectbox(s.label, options, index=index, help=s.help)
    if s.base is bool:
        return cell.checkbox(s.label, value=bool(value), help=s.help)
    if s.base is list:
        return cell.text_input(s.label, ",".join(map(str, value)), help=s.help)
    if s.base is str:
        return cell.text_input(s.label, value, help=s.help)
    return _number(s, value, cell)


def _number(s: Setting, value: Any, cell) -> Any:
    low = high = None
    if s.bounds is not None:
        low = s.bounds.low
        high = None if s.bounds.high == float("inf") else s.bounds.high
    if s.base is int:
        as_int = lambda x: None if x is None else int(x)  # noqa: E731
        return cell.number_input(
            s.label, as_int(low), as_int(high), as_int(value), int(s.step or 1), help=s.help
        )
    return cell.number_input(
        s.label, low, high, None if value is None else float(value), s.step or 0.01,
        format="%g", help=s.help, placeholder="not set (see help)",
    )  # fmt: skip


def _weights(s: Setting, start: Mapping[str, Any], cell, path_cell) -> tuple[str, str]:
    """ImageNet / random / a file: a choice and a path, as one field. Whether ImageNet weights
    are cached is asked for the form's starting architecture, so the widget stays the same
    widget (and keeps its choice) when another architecture is picked."""
    value = start[s.name]
    arch = next(start[a.name] for a in schema() if a.widget == "architecture")
    cached = imagenet_weights_cached(arch)
    options = [*WEIGHT_CHOICES, FROM_FILE]
    choice = {v: k for k, v in WEIGHT_CHOICES.items()}.get(value, FROM_FILE)
    if value == "imagenet" and not cached:
        choice = "Random (from scratch)"  # not downloaded yet: start from what works offline
    help_text = s.help + (
        " ImageNet weights are cached on this machine." if cached else " Not cached here yet."
    )
    picked = cell.selectbox(s.label, options, index=options.index(choice), help=help_text)
    path = path_cell.text_input(
        WEIGHTS_PATH_LABEL, "" if choice != FROM_FILE else value, help=f"For '{FROM_FILE}'."
    )
    return picked, path
