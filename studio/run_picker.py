"""The run selectbox of Evaluate, Classify and Runs: it follows the run chosen on any page.

Runs of two data sets must not look alike where a run is picked (issue #29): each option names
the run's data set and size, the box's tooltip gives the folder, and when the runs come from two
or more data sets a "Data set" filter above the box narrows them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import streamlit as st

from modelkit.runs.store import RunInfo
from studio.state import RUN_KEY

ALL_DATASETS = "<all data sets>"  # the filter's first option: no folder is named this


def run_label(run: RunInfo) -> str:
    """``20260101-resnet18-ab12 · hymenoptera · 397 images``."""
    return f"{run.id} · {run.dataset_label()}"


def dataset_help(run: RunInfo) -> str:
    """The tooltip of a run picker: the whole folder, which the option only names."""
    where = run.dataset_path or "not recorded in the run's config"
    return f"Data set of {run.id}: {where}"


def runs_by_dataset(runs: list[RunInfo]) -> dict[str, list[RunInfo]]:
    """The runs grouped by the folder they trained on, in the order of their newest run."""
    groups: dict[str, list[RunInfo]] = {}
    for run in runs:
        groups.setdefault(run.dataset_path, []).append(run)
    return groups


def dataset_filter(
    runs: list[RunInfo], key: str, on_change: Callable[[], None] | None = None
) -> list[RunInfo]:
    """A "Data set" selectbox ("All data sets" first) when the runs come from two or more data
    sets, and the runs it lets through; with one data set there is nothing to filter, no box.

    The run chosen on another page (RUN_KEY) stays in view: the filter opens on all data sets if
    it would hide it. Picking a data set makes its newest run the chosen one when the chosen run
    is not of it, so the pages that follow the choice show a run of that data set."""
    groups = runs_by_dataset(runs)
    if len(groups) < 2:
        st.session_state.pop(key, None)
        return runs
    options = [ALL_DATASETS, *groups]
    wanted = st.session_state.get(RUN_KEY)
    chosen = next((r for r in runs if str(r.path) == wanted), None)
    shown = st.session_state.get(key)
    if shown not in options or (
        chosen is not None and shown not in (ALL_DATASETS, chosen.dataset_path)
    ):
        st.session_state[key] = ALL_DATASETS
    # two folders of the same name (photos/ here and there) are told apart by their path
    names = Counter(group[0].dataset_name for group in groups.values())

    def describe(option: str) -> str:
        if option == ALL_DATASETS:
            return f"All data sets ({len(runs)} runs)"
        first, count = groups[option][0], len(groups[option])
        name = first.dataset_label()
        if names[first.dataset_name] > 1:
            name += f" ({option})"
        return f"{name} · {count} run{'s' if count != 1 else ''}"

    def follow() -> None:
        picked = st.session_state.get(key)
        kept = runs if picked == ALL_DATASETS else groups.get(picked, runs)
        if st.session_state.get(RUN_KEY) not in {str(r.path) for r in kept}:
            st.session_state[RUN_KEY] = str(kept[0].path)
        if on_change is not None:
            on_change()

    st.selectbox(
        "Data set", options, key=key, format_func=describe, on_change=follow,
        help="Show only the runs trained on one data set folder.",
    )  # fmt: skip
    picked = st.session_state[key]
    return runs if picked == ALL_DATASETS else groups[picked]


def pick_run(
    runs: list[RunInfo],
    key: str,
    label: str = "Run",
    format_run: Callable[[RunInfo], str] = run_label,
    on_change: Callable[[], None] | None = None,
    by_dataset: bool = True,
) -> RunInfo:
    """A selectbox that starts at the run chosen on any page (RUN_KEY), else the newest, and
    remembers a new choice for the other pages. ``by_dataset``: offer the data-set filter above
    it (a page that filters its runs itself passes False)."""
    if by_dataset:
        runs = dataset_filter(runs, f"{key}_dataset", on_change)
    wanted = st.session_state.get(RUN_KEY)
    by_path = {str(r.path): r for r in runs}
    current = wanted if wanted in by_path else str(runs[0].path)
    if st.session_state.get(key) != current:
        st.session_state[key] = current
    st.session_state.setdefault(RUN_KEY, current)

    def remember() -> None:
        st.session_state[RUN_KEY] = st.session_state[key]
        if on_change is not None:
            on_change()

    st.selectbox(
        label, list(by_path), key=key, format_func=lambda p: format_run(by_path[p]),
        on_change=remember, help=dataset_help(by_path[current]),
    )  # fmt: skip
    return by_path[st.session_state[key]]
