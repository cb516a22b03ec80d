"""The Train page's recipe choice: ``auto`` first (it looks at the chosen dataset and says why
it picked each setting), then the fixed recipes, then none (the settings' own defaults). The
form's starting values come from ``modelkit.recipes.resolve``, as for the command line."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from modelkit.errors import ModelkitError
from modelkit.recipes import AUTO, CPU_START, NAMES, Resolved, resolve
from studio.text import md

CHOICES = (*NAMES, "none")  # auto first: the default for a new run
CPU_START_SOURCE = "a first run on this CPU"


def _resolve(name: str, dataset: str, on_gpu: bool, suggested: dict) -> Resolved:
    return resolve(
        name, {}, start={} if on_gpu else CPU_START, start_source=CPU_START_SOURCE,
        suggested=suggested, suggested_source="learning-rate finder", dataset=dataset,
        check_weights=False,  # checked at launch: the form can still change the weights
    )  # fmt: skip


@st.cache_data(max_entries=16, show_spinner="Looking at the dataset…")
def _auto(dataset: str, on_gpu: bool, suggested: tuple) -> Resolved:
    """auto reads the folder (a scan, a few hundred image headers): once per dataset."""
    return _resolve(AUTO, dataset, on_gpu, dict(suggested))


def recipe_choice(dataset: str, on_gpu: bool, suggested: dict) -> Resolved:
    """The recipe selectbox; returns the form's starting values and where each came from
    (``auto``'s reasons go to the run's log at launch)."""
    name = st.selectbox(
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
            chosen = _auto(dataset, on_gpu, tuple(sorted(suggested.items())))
        else:
            chosen = _resolve(name, dataset, on_gpu, suggested)
    except ModelkitError as exc:
        st.warning(f"auto could not look at the dataset: {md(str(exc))}")
        chosen = _resolve("none", "", on_gpu, suggested)
    if chosen.auto is not None:
        with st.expander("Why these settings (auto)", expanded=False):
            lines = chosen.auto.lines()
            st.markdown("\n".join(f"- {md(line.removeprefix('auto: '))}" for line in lines))
    elif chosen.note:
        st.caption(md(chosen.note))
    return chosen


def settings_sources(chosen: Resolved) -> None:
    """Where each starting value of the form came from (the recipe, auto, the machine...)."""
    rows = [
        {"setting": name, "value": str(value), "from": source}
        for name, value, source in chosen.where()
    ]
    if not rows:
        return
    with st.expander("Where these settings come from", expanded=False):
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="train_sources")
        st.caption("Every other setting has its own default; what you change on the form wins.")
