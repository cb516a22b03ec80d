"""Runs: every training run on disk, compared, resumed, downloaded or deleted.

The runs folder is the database (modelkit.runs.store.RunStore); resuming hands the run to the
process-wide job registry, exactly as the Train page does for a new run.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from modelkit.errors import ModelkitError
from modelkit.runs.store import ENDED_STATES, RunInfo, RunStore, read_metrics, run_state, wait_until
from studio import figures as plots
from studio.formatting import TRAINING_ACCURACY, TRAINING_ACCURACY_HELP, duration_text
from studio.run_picker import dataset_filter, pick_run
from studio.state import RUN_KEY, job_registry, settings
from studio.text import md

STATE_LABELS = {
    "running": "running",
    "finished": "finished",
    "stopped": "stopped",
    "failed": "failed",
    "interrupted": "interrupted",
    "unreadable": "unreadable",
}
COMPARE_DEFAULT = 3
PENDING_DELETE = "_runs_delete_pending"  # id of the run whose deletion awaits confirmation
FLASH = "_runs_flash"  # (kind, message) shown once on the next run of the page
EXPORTED = "_runs_exported"  # (file, max abs diff, samples) of the last export


def _created(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def runs_table(runs: list[RunInfo]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run": r.id,
                "status": STATE_LABELS.get(r.state, r.state),
                "data set": r.dataset_name,
                "images": r.dataset_images or None,
                "architecture": r.arch,
                TRAINING_ACCURACY: r.best_val_acc,
                "created": _created(r.created),
                "duration": duration_text(r.duration_s),
                "epochs": r.epochs_text,
                "summary": r.problem or r.summary(),
            }
            for r in runs
        ]
    )


def _read_bytes(path: Path):
    """For st.download_button: the file is read only when the button is clicked."""
    return lambda: path.read_bytes()


def _flash() -> None:
    kind, message = st.session_state.pop(FLASH, (None, None))
    if kind == "success":
        st.success(message, icon=":material/check_circle:")
    elif kind == "error":
        st.error(message)
    elif kind == "resumed":
        st.success(message, icon=":material/play_arrow:")
        st.page_link(
            "app_pages/train.py",
            label="Watch it on the Train page",
            icon=":material/model_training:",
        )


def _dataset_line(run: RunInfo) -> str:
    where = run.dataset_path or "its folder is not recorded"
    return f"Data set: {run.dataset_label()} · {where}"


def _compare_datasets(runs: list[RunInfo]) -> None:
    """Which data set each compared run trained on: curves of two data sets side by side do not
    say which model is better."""
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run": r.id,
                    "data set": r.dataset_name,
                    "images": r.dataset_images or None,
                    TRAINING_ACCURACY: r.best_val_acc,
                    "folder": r.dataset_path,
                }
                for r in runs
            ]
        ),
        hide_index=True,
        column_config={
            "images": st.column_config.NumberColumn(format="%d"),
            TRAINING_ACCURACY: st.column_config.NumberColumn(
                format="percent", help=TRAINING_ACCURACY_HELP
            ),
        },
    )
    if len({r.dataset_path for r in runs}) > 1:
        st.warning(
            "These runs trained on different data sets: their accuracies measure different "
            "images and do not say which model is better.",
            icon=":material/compare_arrows:",
        )


# -- sections -------------------------------------------------------------------------------------
def _compare(runs: list[RunInfo]) -> None:
    st.subheader("Compare")
    with_metrics = {r.id: r for r in runs if r.epochs_done}
    if not with_metrics:
        st.caption("No run has finished an epoch yet.")
        return
    pick, which, scale = st.columns([4, 1, 1], vertical_alignment="bottom")
    chosen = pick.multiselect(
        "Runs to compare",
        list(with_metrics),
        default=list(with_metrics)[:COMPARE_DEFAULT],
        key="runs_compare",
        format_func=lambda rid: f"{rid} · {with_metrics[rid].dataset_name}",
    )
    loss = which.selectbox("Loss", ["val_loss", "train_loss"], key="runs_compare_loss")
    log_y = scale.checkbox("Log-scale loss", key="runs_compare_log")
    if not chosen:
        st.caption("Pick runs to draw their curves side by side.")
        return
    _compare_datasets([with_metrics[rid] for rid in chosen])
    curves = {rid: read_metrics(with_metrics[rid].path) for rid in chosen}
    left, right = st.columns(2)
    left.plotly_chart(plots.compare_runs_figure(curves, "val_acc"), key="runs_compare_acc")
    right.plotly_chart(
        plots.compare_runs_figure(curves, loss, log_y=log_y), key="runs_compare_loss_chart"
    )


def _resume(run: RunInfo) -> None:
    try:
        job = job_registry().launch(resume_dir=run.path)
    except (ModelkitError, OSError, RuntimeError) as exc:
        st.error(f"Cannot resume {md(run.id)}: {md(exc)}")
        return
    st.session_state[RUN_KEY] = str(run.path)
    # Give the job a moment to mark the run as running, so the table redrawn below says so.
    with st.spinner("Starting…"):
        wait_until(lambda: not job.thread.is_alive() or run_state(run.path)["state"] != run.state)
        # the run is marked running before its checkpoint is read, and the checkpoint before any
        # data: wait past "starting", or a damaged checkpoint's failure lands after the success
        wait_until(lambda: not job.thread.is_alive() or job.snapshot().state != "starting")
    view = job.snapshot()
    if view.state == "failed":  # a damaged checkpoint, say: the failure alone, no success beside it
        st.session_state[FLASH] = ("error", f"Could not resume {md(run.id)}: {md(view.error)}")
    else:
        st.session_state[FLASH] = ("resumed", f"Resumed {md(job.name)} from its last checkpoint.")
    st.rerun()


def _ask_delete(run_id: str) -> None:
    st.session_state[PENDING_DELETE] = run_id


def _cancel_delete() -> None:
    st.session_state.pop(PENDING_DELETE, None)


def _delete(run: RunInfo) -> None:
    st.session_state.pop(PENDING_DELETE, None)
    active = job_registry().active()
    if active is not None and Path(active.snapshot().run_dir) == run.path:
        st.session_state[FLASH] = (
            "error",
            f"{md(run.id)} is training now; stop it before deleting.",
        )
        return
    try:
        RunStore(settings().runs_dir).delete(run.path)
    except (ModelkitError, RuntimeError, OSError) as exc:
        st.session_state[FLASH] = ("error", f"Could not delete {md(run.id)}: {md(exc)}")
        return
    if st.session_state.get(RUN_KEY) == str(run.path):
        st.session_state.pop(RUN_KEY)
    st.session_state[FLASH] = ("success", f"Deleted run {md(run.id)}: the folder {md(run.path)}.")


def _export(run: RunInfo) -> None:
    """Export to TorchScript or ONNX (checked against PyTorch as it is written), then download.
    int8 and OpenVINO exports take longer and come with an accuracy table: Evaluate's Export tab
    runs them in the background and shows it."""
    from modelkit.serving.export import ExportError, export_run

    if run.folder.saved_checkpoint() is None:
        return
    st.caption("Serve this run over HTTP (POST images to /predict; see the README):")
    st.code(f"modelkit serve {shlex.quote(str(run.path))}", language="bash")
    fmt_col, go_col, get_col = st.columns([2, 1, 2], vertical_alignment="bottom")
    fmt = fmt_col.selectbox("Export format", ("torchscript", "onnx"), key="runs_export_format")
    if go_col.button("Export", key="runs_export", icon=":material/output:"):
        with st.spinner(f"Exporting to {fmt} and checking it against PyTorch…"):
            try:
                done = export_run(run.path, fmt)
            except (ExportError, OSError, RuntimeError) as exc:
                st.error(f"Export failed: {md(exc)}")
                return
        st.session_state[EXPORTED] = (str(done.path), done.max_abs_diff, done.sample_source)
    path, diff, source = st.session_state.get(EXPORTED, ("", 0.0, ""))
    if path and Path(path).parent.parent == run.path and Path(path).is_file():
        get_col.download_button(
            f"Download {Path(path).name}",
            _read_bytes(Path(path)),
            file_name=f"{run.id}-{Path(path).name}",
            on_click="ignore",
            icon=":material/download:",
            key="runs_export_download",
        )
        st.caption(f"Largest logit difference from PyTorch on {source}: {diff:.2g}")
    st.caption("int8 (ONNX Runtime, OpenVINO) with an accuracy table: Evaluate → Export.")


def _manage(runs: list[RunInfo]) -> None:
    st.subheader("Manage a run")
    run = pick_run(
        runs,
        "runs_manage",
        on_change=lambda: st.session_state.pop(PENDING_DELETE, None),
        by_dataset=False,  # the filter above the table narrows these runs already
    )
    running = run.state == "running"
    about = run.path if run.state == "unreadable" else f"{run.summary()} · {run.path}"
    st.caption(md(about))
    if run.state != "unreadable":
        st.caption(md(_dataset_line(run)))
    if run.state == "unreadable":
        st.error(f"This run cannot be read: {md(run.problem)}. You can delete it.")
    if run.state == "failed" and run.error:
        st.error(f"This run failed: {md(run.error)}")
    elif run.state == "interrupted":
        st.warning("This run's process ended without finishing it (the app or machine stopped).")
    if running:
        st.info("This run is training now.", icon=":material/play_circle:")
        st.page_link(
            "app_pages/train.py",
            label="Watch it on the Train page",
            icon=":material/model_training:",
        )

    cols = st.columns(4, vertical_alignment="center")
    with cols[0]:
        st.page_link(
            "app_pages/evaluate.py",
            label="Evaluate this run",
            icon=":material/analytics:",
            disabled=run.state not in ENDED_STATES,
        )
    with cols[1]:
        ckpt = run.folder.saved_checkpoint()
        if ckpt is not None:
            size_mb = ckpt.stat().st_size / 2**20
            st.download_button(
                # the size goes in the tooltip: with it the label was cut short at 1280 px
                f"Download {ckpt.name}",
                _read_bytes(ckpt),
                file_name=f"{run.id}-{ckpt.name}",
                mime="application/octet-stream",
                on_click="ignore",
                icon=":material/download:",
                key="runs_download",
                help=f"The model's weights, {size_mb:.0f} MB",
            )
        else:
            st.caption("No checkpoint saved.")
    with cols[2]:
        resume = st.button(
            "Resume training",
            key="runs_resume",
            icon=":material/play_arrow:",
            disabled=not run.resumable,
            help="Continue from the last checkpoint (interrupted, stopped or failed runs).",
        )
    with cols[3]:
        st.button(
            "Delete run…",
            key="runs_delete",
            icon=":material/delete:",
            disabled=running,
            help="Stop it first." if running else "Asks for confirmation.",
            on_click=_ask_delete,
            args=(run.id,),
        )
    _export(run)
    if resume:
        _resume(run)
    if st.session_state.get(PENDING_DELETE) == run.id and not running:
        with st.container(border=True):
            st.warning(
                f"Delete the folder **{md(run.path)}**? It is removed from disk with its "
                "checkpoints, metrics and evaluation. This cannot be undone."
            )
            c1, c2, _ = st.columns([1, 1, 3])
            c1.button(
                "Yes, delete it",
                type="primary",
                key="runs_delete_confirm",
                on_click=_delete,
                args=(run,),
            )
            c2.button("Cancel", key="runs_delete_cancel", on_click=_cancel_delete)


# -- page -----------------------------------------------------------------------------------------
st.header("Runs")
_flash()
runs = RunStore(settings().runs_dir).list()
if not runs:
    st.info("No runs yet. Choose a dataset and train a model: every run is recorded here.")
    st.page_link(
        "app_pages/dataset.py", label="Go to the Dataset page", icon=":material/folder_open:"
    )
    st.stop()

runs = dataset_filter(
    runs, "runs_dataset", on_change=lambda: st.session_state.pop(PENDING_DELETE, None)
)
st.dataframe(
    runs_table(runs),
    hide_index=True,
    column_config={
        "data set": st.column_config.TextColumn(help="The folder the run trained on (its name)."),
        "images": st.column_config.NumberColumn(
            format="%d",
            help="Images of the data set the run split into train, validation and test.",
        ),
        TRAINING_ACCURACY: st.column_config.ProgressColumn(
            format="percent", min_value=0, max_value=1, help=TRAINING_ACCURACY_HELP
        ),
        "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        "summary": st.column_config.TextColumn(width="large"),
    },
)
_compare(runs)
_manage(runs)
