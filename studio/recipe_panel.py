"""The Train page's recipe choice: ``auto`` first (it looks at the chosen dataset and says why
it picked each setting), then the fixed recipes, then none (the settings' own defaults)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from modelkit.auto_recipe import AutoRecipe, auto_recipe
from modelkit.errors import ModelkitError
from modelkit.recipes import AUTO, NAMES, recipe
from studio.text import md

CHOICES = (*NAMES, "none")  # auto first: the default for a new run


@st.cache_data(max_entries=8, show_spinner="Looking at the dataset…")
def _auto(dataset: str) -> AutoRecipe:
    return auto_recipe(dataset)


def recipe_choice(dataset: str) -> tuple[dict[str, Any], AutoRecipe | None]:
    """The recipe selectbox; returns the form's defaults from the recipe, and the auto recipe
    (its reasons go to the run's log at launch) when ``auto`` is chosen and could look."""
    name = st.selectbox(
        "Recipe",
        CHOICES,
        help="Fills the form with settings for a situation; change any of them before "
        "launching. auto: chosen from the dataset, the weights on this machine and the device, "
        "with the reasons shown. few-images: heavy augmentation, head first then fine-tuning. "
        "from-scratch-small-images: no pretrained weights, small photos. fine-tune-large: "
        "thousands of images a class from ImageNet weights.",
    )
    if name != AUTO:
        return recipe(name), None
    if not dataset:
        st.caption("auto chooses once a dataset is picked.")
        return {}, None
    try:
        chosen = _auto(dataset)
    except ModelkitError as exc:
        st.warning(f"auto could not look at the dataset: {md(str(exc))}")
        return {}, None
    with st.expander("Why these settings (auto)", expanded=False):
        st.markdown("\n".join(f"- {md(line.removeprefix('auto: '))}" for line in chosen.lines()))
    return dict(chosen.settings), chosen
