"""Tune: search learning rate, weight decay and batch size with Optuna, then train the best.

The search runs in a background thread (modelkit.tune.search.TuneJob) and writes its study to
SQLite; this page only reads the study and draws modelkit's figures.
"""

from __future__ import annotations

import functools
import re

import pandas as pd
import streamlit as st

from app_pages._tune_state import tune_registry
from modelkit.config import EPOCHS_FIELD
from modelkit.device import pick_device
from modelkit.errors import ModelkitError
from modelkit.paths import confine_to
from modelkit.recipes import CPU_START, TRIAL_START, resolve
from modelkit.tune.search import (
    OPTIONAL,
    SearchSpace,
    TuneJob,
    best_config,
    load_study,
    study_names,
    trials_table,
)
from studio.config_form import ConfigForm, dataset_input, field_input
from studio.search_figures import history_figure, importance_figure
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
    minutes = c3.number_input("Time budget (minutes, 0 = none)", 0, 10000, 0)
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
            job = TuneJob(base, name, int(trials), float(minutes) * 60 or None, space)
        # One training at a time per app: a search counts, whatever else trains.
        start = functools.partial(registry.start, job)
        trainings.start_other(f"search {name}", start, lambda: job.active)
        st.toast(f"Search {md(name)} started")
    except (ModelkitError, RuntimeError) as exc:
        st.error(md(exc))


@st.fragment(run_every=2.0)
def search_status() -> None:
    job = registry.current
    if job is None:
        return
    if job.active:
        st.info(f"Search **{md(job.study)}** running: {job.trials_done} trial(s) done.")
        if st.button("Stop search", icon=":material/stop_circle:", key="stop_search"):
            job.stop()
            st.toast("Stopping after the current batch…")
    elif job.state == "failed":
        st.error(f"Search {md(job.study)} failed: {md(job.error)}")
    else:
        st.success(f"Search {md(job.study)} {job.state}: {job.trials_done} trial(s).")


search_status()

st.markdown("#### Studies")
names = study_names(runs_dir / "tune")
if not names:
    st.info("No search yet. Start one above; each trial becomes a run on the Runs page.")
    st.stop()
current = registry.current.study if registry.current else None
chosen = st.selectbox("Study", names, index=names.index(current) if current in names else 0)
study = load_study(chosen, runs_dir)
if study is None or not study.trials:
    st.info("This study has no trials yet.")
    st.stop()
st.dataframe(pd.DataFrame(trials_table(study)), hide_index=True)
left, right = st.columns(2)
left.plotly_chart(history_figure(study), key="tune_history")
importance = importance_figure(study)
if importance is None:
    right.info("Parameter importances need at least 2 completed trials.")
else:
    right.plotly_chart(importance, key="tune_importance")

best = best_config(study)
if best is not None:
    st.markdown(f"**Best trial:** val_acc {study.best_value:.4f} with `{study.best_params}`")
    c1, c2 = st.columns([1, 3])
    epochs = max(getattr(best, EPOCHS_FIELD), 10)
    full_epochs = field_input(EPOCHS_FIELD, epochs, c1, label="Epochs for the full run")
    if c2.button("Train with the best parameters", icon=":material/rocket_launch:"):
        try:
            job_registry().launch(best.replace(**{EPOCHS_FIELD: full_epochs}))
            st.toast("Training launched; follow it on the Train page.")
        except ModelkitError as exc:
            st.error(md(exc))
