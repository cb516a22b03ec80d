"""The Train page's learning-rate finder: run the range test, show the plot, take the suggestion.

The test itself is modelkit.training.lr_finder; this panel draws it and puts the suggestion into the
form's Learning rate field (``suggested_settings``, the form's defaults when it is drawn)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from modelkit.config import LR_FINDER_FIELD, TrainConfig
from modelkit.errors import ModelkitError
from modelkit.training.lr_finder import lr_find
from studio.search_figures import lr_figure
from studio.state import job_registry
from studio.text import md

LR_KEY = "lr_finder_suggestion"  # float: the learning rate the form starts from
RESULT_KEY = "lr_finder_result"


def suggested_settings() -> dict[str, float]:
    """The suggestion the person took, as form defaults ({} when none)."""
    lr = st.session_state.get(LR_KEY)
    return {LR_FINDER_FIELD: lr} if lr else {}


def _take(lr: float) -> None:
    st.session_state[LR_KEY] = min(max(float(f"{lr:.3g}"), 1e-6), 10.0)  # the field's range


def lr_finder_panel(build_config: Callable[[], TrainConfig], run_now: bool) -> None:
    """``run_now``: the form's "Find a learning rate" submit button was pressed."""
    result = st.session_state.get(RESULT_KEY)
    if not run_now and result is None:
        return
    with st.expander("Learning-rate finder", icon=":material/query_stats:", expanded=True):
        st.caption(
            "A short run with a growing learning rate on the form's settings; its weights are "
            "thrown away. Pick a rate where the loss falls fastest."
        )
        if run_now:
            bar = st.progress(0.0, text="learning-rate range test…")
            try:
                config = build_config()
                registry = job_registry()
                registry.check_config(config)  # the same allowed roots as Launch
                with registry.hold("the learning-rate finder"):  # one training at a time
                    result = lr_find(
                        config,
                        progress=lambda i, n: bar.progress(i / n, text=f"step {i}/{n}"),
                    )
                st.session_state[RESULT_KEY] = result
            except (ModelkitError, RuntimeError, OSError, ValueError) as exc:
                st.error(md(exc))
            bar.empty()
        result = st.session_state.get(RESULT_KEY)
        if result is None:
            return
        st.plotly_chart(lr_figure(result), key="lr_finder_plot")
        if result.suggestion is None:
            st.warning("Too few steps for a suggestion; use more training images.")
            return
        st.markdown(
            f"Steepest descent at **{result.suggestion:.3g}**; a tenth of the minimum at "
            f"{result.min_lr_div10:.3g}."
        )
        c1, c2 = st.columns(2)
        c1.button(
            f"Use {result.suggestion:.3g}", on_click=_take, args=(result.suggestion,),
            key="lr_take_steepest",
        )  # fmt: skip
        c2.button(
            f"Use {result.min_lr_div10:.3g}", on_click=_take, args=(result.min_lr_div10,),
            key="lr_take_min",
        )  # fmt: skip
