"""The Tune page's search view: how the search is doing, its trials as a table in plain words,
and a full training run with the best trial's settings.

It is a fragment that polls only while a search runs (an idle page costs no CPU), and redraws
the whole page once when the search it watched ends: the results and the Train button then
appear without a reload, and the page stops polling.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import streamlit as st

from app_pages._tune_state import TuneRegistry
from modelkit.config import EPOCHS_FIELD, TrainConfig
from modelkit.errors import ModelkitError
from modelkit.tune.results import (
    ACCURACY,
    NOTE,
    best_run,
    best_summary,
    best_trial,
    results_rows,
    setting_label,
)
from modelkit.tune.search import TuneJob, load_study, study_names
from modelkit.tune.space import LOG_SCALE
from studio.config_form import field_input
from studio.search_figures import history_figure, importance_figure
from studio.state import job_registry
from studio.text import md

POLL_SECONDS = 2.0
POLLING_KEY = "tune_polling"  # bool: the last full run drew the view polling a running search
TRAIN_PAGE = "app_pages/train.py"


def search_view(runs_dir: Path, registry: TuneRegistry) -> None:
    """Status of the app's search, then the chosen study's results (the running one's first)."""
    job = registry.current
    running = job is not None and job.active
    if st.session_state.get(POLLING_KEY) and not running:
        st.session_state[POLLING_KEY] = False
        st.rerun()  # the search just ended: the whole page again, with no polling
    if job is not None:
        _status(job)
    _studies(runs_dir, job)


def polling(registry: TuneRegistry) -> float | None:
    """The view's run_every for this full run (None when no search runs: no polling), noted so
    the view knows to redraw the page when the search ends."""
    running = registry.current is not None and registry.current.active
    st.session_state[POLLING_KEY] = running
    return POLL_SECONDS if running else None


def _status(job: TuneJob) -> None:
    if job.active:
        st.info(f"Search **{md(job.study)}** running: {job.trials_done} trial(s) done.")
        if st.button("Stop search", icon=":material/stop_circle:", key="stop_search"):
            job.stop()
            st.toast("Stopping after the current batch…")
    elif job.state == "failed":
        st.error(f"Search {md(job.study)} failed: {md(job.error)}")
    else:
        st.success(
            f"Search {md(job.study)} {job.state}: {job.trials_done} trial(s). "
            "Its results are below."
        )


def _studies(runs_dir: Path, job: TuneJob | None) -> None:
    st.markdown("#### Results")
    running = job is not None and job.active
    names = study_names(runs_dir / "tune")
    if not names:
        if running:
            st.info("The first trial is training; its row appears here when it ends.")
        else:
            st.info("No search yet. Start one above; each trial becomes a run on the Runs page.")
        return
    current = job.study if job is not None else None
    chosen = st.selectbox("Study", names, index=names.index(current) if current in names else 0)
    live = running and chosen == current
    # a search's first moments: its thread is creating the study's tables, which reading the
    # file would race ("table studies already exists"); nothing to show before a trial ends
    study = None if live and not job.trials_done else load_study(chosen, runs_dir)
    if study is None or not study.trials:
        st.info("The first trial is training." if live else "This study has no trials yet.")
        return
    rows = pd.DataFrame(results_rows(study))
    formats = {setting_label(k): "%.2e" for k in LOG_SCALE}  # rates span decades: 1e-4 … 1e-1
    config = {
        ACCURACY: st.column_config.NumberColumn(format="%.3f"),
        **{k: st.column_config.NumberColumn(format=v) for k, v in formats.items()},
    }
    st.dataframe(rows, hide_index=True, column_config=config)
    st.caption(NOTE)
    left, right = st.columns(2)
    left.plotly_chart(history_figure(study), key="tune_history")
    importance = None if live else importance_figure(study)  # costly: once, at the end
    if importance is not None:
        right.plotly_chart(importance, key="tune_importance")
    elif live:
        right.info("Which setting mattered most is worked out when the search ends.")
    else:
        right.info("Which setting mattered most needs at least 2 finished trials.")
    _train_the_best(study, live)


def _train_the_best(study: optuna.Study, live: bool) -> None:
    best = best_trial(study)
    if best is None:
        st.info("No trial has finished yet: the best settings appear with the first.")
        return
    lines = best_summary(study)
    st.markdown(f"**{md(lines[0])}**  \n" + "  \n".join(md(line.strip()) for line in lines[1:]))
    c1, c2 = st.columns([1, 3])
    epochs = max(int(best.user_attrs.get("config", {}).get(EPOCHS_FIELD, 1)), 10)
    full_epochs = field_input(EPOCHS_FIELD, epochs, c1, label="Epochs for the full run")
    c2.caption(
        "A full training run with these settings over the search's own (dataset, model, image "
        "size…); it shows on the Train page." + (" Once the search has ended." if live else "")
    )
    if not c2.button(
        "Train with the best settings", icon=":material/rocket_launch:", disabled=live
    ):
        return
    try:
        resolved = best_run(study, {EPOCHS_FIELD: full_epochs})
        config = TrainConfig.from_dict(resolved.settings)
        note = (
            f"settings: the best trial ({best.number}) of the search {study.study_name} "
            f"(validation accuracy {best.value:.3f}), over the search's own settings"
        )
        job_registry().launch(config, notes=[note])
    except ModelkitError as exc:
        st.error(md(exc))
        return
    st.switch_page(TRAIN_PAGE)  # where the running job shows, live
