"""The Train page's recipe choice: ``auto`` first (it looks at the chosen dataset and says why
it picked each setting), then the fixed recipes, then none (the settings' own defaults); beside
it the time budget, which ``auto`` plans for (the epochs, the backbone, what fits on this
machine), so it re-plans when the budget changes. The form's starting values come from
``modelkit.recipes.resolve``, as for the command line, the budget given as the person's own."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from modelkit.config import schema
from modelkit.errors import ModelkitError
from modelkit.recipes import AUTO, CPU_START, NAMES, Resolved, resolve
from modelkit.recipes.measured import measure_auto
from studio.auto_reasons import plain_reasons, value_text
from studio.budget_input import Budget, budget_input, given_budget
from studio.text import md

CHOICES = (*NAMES, "none")  # auto first: the default for a new run
CPU_START_SOURCE = "a first run on this CPU"


def _layers(on_gpu: bool, suggested: dict) -> dict:
    """The page's own layers under the person's values: its CPU start, the finder's rate."""
    return dict(
        start={} if on_gpu else CPU_START, start_source=CPU_START_SOURCE,
        suggested=dict(suggested), suggested_source="learning-rate finder",
    )  # fmt: skip


def _resolve(name: str, dataset: str, on_gpu: bool, suggested: dict, given: dict) -> Resolved:
    return resolve(
        name, given, dataset=dataset, **_layers(on_gpu, suggested),
        check_weights=False,  # checked at launch: the form can still change the weights
    )  # fmt: skip


def measure_at_launch(config, chosen: Resolved, on_gpu: bool, suggested: dict):
    """For auto: what the job calls, in its thread, before training ``config`` (the form's):
    the backbones measured and the paths raced (minutes), what the person changed kept."""
    if chosen.auto is None:
        return None
    return partial(measure_auto, config, chosen, **_layers(on_gpu, suggested))


@st.cache_data(max_entries=16, show_spinner="Looking at the dataset…")
def _auto(dataset: str, on_gpu: bool, suggested: tuple, given: tuple) -> Resolved:
    """auto reads the folder (a scan, a few hundred image headers): once per dataset and
    budget (``given``), since the budget changes what it chooses."""
    return _resolve(AUTO, dataset, on_gpu, dict(suggested), dict(given))


def recipe_choice(dataset: str, on_gpu: bool, suggested: dict) -> tuple[Resolved, Budget]:
    """The recipe selectbox and the time budget beside it; returns the form's starting values,
    where each came from (``auto``'s reasons go to the run's log at launch) and the budget."""
    left, right = st.columns([3, 2], vertical_alignment="top")
    budget = budget_input(right)
    given = given_budget(budget)
    name = left.selectbox(
        "Recipe",
        CHOICES,
        help="Fills the form with settings for a situation; change any of them before "
        "launching. auto: chosen from the dataset, the weights on this machine and the device, "
        "with the reasons shown. few-images: heavy augmentation, head first then fine-tuning. "
        "from-scratch-small-images: no pretrained weights, small photos. fine-tune-large: "
        "thousands of images a class from ImageNet weights.",
    )
    if name == AUTO and not dataset:
        st.caption("auto chooses once a dataset is picked.")
        name = "none"
    try:
        if name == AUTO:
            chosen = _auto(
                dataset, on_gpu, tuple(sorted(suggested.items())), tuple(sorted(given.items()))
            )
        else:
            chosen = _resolve(name, dataset, on_gpu, suggested, given)
    except ModelkitError as exc:
        st.warning(f"auto could not choose: {md(str(exc))}")
        chosen = _resolve("none", "", on_gpu, suggested, given)
    if chosen.auto is not None:
        st.caption(
            "At launch auto measures the bundled backbones on your training images and races "
            "its paths: the settings it chose may change then; the ones you changed stay."
        )
        with st.expander("Why these settings (auto)", expanded=False):
            for reason in plain_reasons(chosen.auto.reasons):
                st.markdown(reason.text, help=reason.tooltip)
    elif chosen.note:
        st.caption(md(chosen.note))
    return chosen, budget


def settings_sources(chosen: Resolved) -> None:
    """Where each starting value of the form came from (the recipe, auto, the machine...)."""
    by_name = {s.name: s for s in schema()}
    rows = [
        {"setting": name, "value": value_text(by_name.get(name), value), "from": source}
        for name, value, source in chosen.where()
    ]
    if not rows:
        return
    with st.expander("Where these settings come from", expanded=False):
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="train_sources")
        st.caption("Every other setting has its own default; what you change on the form wins.")
