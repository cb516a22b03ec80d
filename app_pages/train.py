"""Train: the essentials and Launch first, every other setting in a collapsed section per group
(the form is generated from TrainConfig's schema by studio.config_form), the live view on top."""

from __future__ import annotations

from functools import partial

import streamlit as st

from app_pages._train_live import live_view
from app_pages._train_lr_finder import lr_finder_panel, suggested_settings
from app_pages._train_recipe import measure_at_launch, recipe_choice, settings_sources
from modelkit.config import ConfigError
from modelkit.device import pick_device
from modelkit.jobs import JobBusyError
from modelkit.training.distributed import gpu_count
from studio.budget_input import budget_setting
from studio.config_form import ConfigForm, dataset_input, dataset_of
from studio.state import DATASET_KEY, job_registry, settings

LAUNCHED_KEY = "train_launched"  # str: the toast to show after the rerun that follows a launch

st.header("Train")
on_gpu = pick_device().type != "cpu"
last_job = job_registry().current
running = job_registry().active() is not None
if message := st.session_state.pop(LAUNCHED_KEY, None):
    st.toast(message)

live_view()  # on top: after Launch this is where the person looks; the form folds away below
new_run = st.expander("Settings for a new run", expanded=False) if running else st.container()
with new_run:
    # A reloaded browser tab is a new session: start from the dataset of the job it finds.
    dataset = dataset_input(
        st.session_state.get(DATASET_KEY) or (dataset_of(last_job.config) if last_job else "")
    )
    if not dataset:
        st.info("Pick a dataset first.")
        st.page_link(
            "app_pages/dataset.py", label="Choose a dataset →", icon=":material/folder_open:"
        )
    chosen, budget = recipe_choice(dataset, on_gpu, suggested_settings())
    auto = chosen.auto
    with st.form("train_form", enter_to_submit=False, border=False):
        # the budget has its box beside the recipe: the form does not draw it again
        form = ConfigForm(
            chosen.settings, settings().runs_dir, {budget_setting().name: budget.seconds}
        )
        form.essentials()
        gpus = gpu_count()
        multi_gpu = gpus > 1 and st.toggle(
            f"Train on all {gpus} GPUs (torchrun, one process per GPU)",
            key="train_torchrun",
            help="Batch size is the global batch, split evenly over the GPUs.",
        )
        c1, c2 = st.columns(2)
        launch = c1.form_submit_button(
            "Launch training", icon=":material/rocket_launch:", type="primary",
            disabled=not dataset or bool(budget.problem), width="stretch",
        )  # fmt: skip
        find_lr = c2.form_submit_button(  # a submit button: the finder sees the form as it is
            "Find a learning rate", icon=":material/query_stats:",
            disabled=not dataset or bool(budget.problem),
            width="stretch",
        )  # fmt: skip
        st.caption("Every other setting, by group (the defaults suit a first run):")
        form.sections()
    settings_sources(chosen)


build_config = partial(form.build, dataset)  # read when Launch or the finder needs it

if launch:
    try:
        if multi_gpu:
            job_registry().launch_subprocess(build_config(), gpus)
        else:
            config = build_config()
            job_registry().launch(
                config,
                notes=auto.lines(config) if auto else None,
                measure=measure_at_launch(config, chosen, on_gpu, suggested_settings()),
            )
        where = f"{gpus} GPUs" if multi_gpu else pick_device()
        st.session_state[LAUNCHED_KEY] = f"Training launched on {where}"
        st.rerun()  # draw the page again: the live view on top, the form folded
    except (ConfigError, JobBusyError) as exc:
        st.error(str(exc))

lr_finder_panel(build_config, run_now=find_lr)
