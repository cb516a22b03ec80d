"""The run selectbox of Evaluate, Classify and Runs: it follows the run chosen on any page."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from modelkit.runs.store import RunInfo
from studio.state import RUN_KEY


def pick_run(
    runs: list[RunInfo],
    key: str,
    label: str = "Run",
    format_run: Callable[[RunInfo], str] = lambda r: r.id,
    on_change: Callable[[], None] | None = None,
) -> RunInfo:
    """A selectbox that starts at the run chosen on any page (RUN_KEY), else the newest, and
    remembers a new choice for the other pages."""
    by_path = {str(r.path): r for r in runs}
    wanted = st.session_state.get(RUN_KEY)
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
        on_change=remember,
    )  # fmt: skip
    return by_path[st.session_state[key]]
