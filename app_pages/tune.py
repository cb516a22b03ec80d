"""Tune: search learning rate, weight decay and batch size with Optuna, then train the best.

The search runs in a background thread (modelkit.tune.search.TuneJob) and writes its study to
SQLite; this page only reads the study (modelkit.tune.results puts it in plain words) and
draws modelkit's figures.
"""

from __future__ import annotations

import functools
import re

import streamlit as st

from app_pages._tune_results import polling, search_view
from app_pages._tune_state import tune_registry
from modelkit.device import pick_device
from modelkit.errors import ModelkitError
from modelkit.paths import confine_to
from modelkit.recipes import CPU_START, TRIAL_START, resolve
from modelkit.tune.search import OPTIONAL, SearchSpace, TuneJob
from studio.budget_input import EXAMPLES, parse_budget
from studio.config_form import ConfigForm, dataset_input
from studio.state import DATASET_KEY, job_registry, settings
from studio.text import md

st.header("Tune")
runs_dir = settings().runs_dir
registry = tune_registry()
on_gpu = pick_device().type != "cpu"

with st.form("tune_form", enter_to_submit=False):
    st.markdown("#### New search")
    dataset = dataset_input(st.session_state.get(DATASET_KEY, ""))
    c1, c2, c3 = st.columns(3)
    study_name = c1.text_input("Study name", value="search", help="Same name: continue it.")
    trials = c2.number_input("Trials", 1, 1000, 10)
    search_budget = c3.text_input(
        "Search time budget", "", help=f"For the whole search, typed as {EXAMPLES}; empty: none. "
        "Each trial's own budget is under Stopping below.",
    )  # fmt: skip
    extra = st.multiselect("Also search", list(OPTIONAL))
    st.caption(
        "Each trial is a run with the settings below (epochs: per trial); the search picks the "
        "learning rate, weight decay and batch size, and what you add under Also search."
    )
    start = {**({} if on_gpu else CPU_START), **TRIAL_START}  # short trials from random weights
    trial = resolve("none", {}, start=start, start_source="a search's trials", check_weights=False)
    form = ConfigForm(trial.settings, runs_dir)
    form.essentials()
    start = st.form_submit_button("Start search", icon=":material/tune:", type="primary")
    form.sections()

if start:
    try:
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", study_name).strip("-") or "search"
        base = form.build(dataset)
        trainings = job_registry()
        trainings.check_config(base)  # dataset and weights inside the allowed roots
        with confine_to(settings().allowed_roots):  # its thread keeps this: trials stay inside
            space = SearchSpace(extra=tuple(extra))
            seconds = parse_budget(search_budget)  # typed as on the Train page: 10m, 1h30m
            job = TuneJob(base, name, int(trials), seconds or None, space)
        # One training at a time per app: a search counts, whatever else trains.
        start = functools.partial(registry.start, job)
        trainings.start_other(f"search {name}", start, lambda: job.active)
        st.toast(f"Search {md(name)} started")
    except (ModelkitError, RuntimeError, ValueError) as exc:
        st.error(md(exc))


# The search view polls while a search runs, and only then (see _tune_results).
st.fragment(search_view, run_every=polling(registry))(runs_dir, registry)
