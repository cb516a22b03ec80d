"""The live view of a training job: a fragment that reads the registry's snapshot.

The training thread never calls streamlit; this fragment only reads ``TrainingJob.snapshot()``.
It polls only while a job runs (an idle Train page costs no CPU), and when the job it watched
ends it redraws the whole page once: the Train form unfolds for a new run, and the view is
declared again without polling.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from modelkit.events import UNTRAINED
from modelkit.jobs import LiveView, TrainingJob
from modelkit.jobs.live_view import candidate_tables
from modelkit.runs.folder import budget_note
from studio.figures import accuracy_figure, batch_loss_figure, curves_figure
from studio.formatting import duration_text
from studio.state import RUN_KEY, job_registry
from studio.text import md

POLL_SECONDS = 1.5
POLLING_KEY = "live_view_polling"  # bool: the last full run drew the view polling a running job


def candidates(v: LiveView) -> None:
    """What auto measured before choosing (auto_search.json), as small tables under the plan:
    the candidates, their held-out accuracy and seconds, and why the winner won."""
    for table in candidate_tables(v.run_dir):
        st.caption(md(table.title))
        st.dataframe(pd.DataFrame(table.rows), hide_index=True)
        if table.winner:
            st.caption(md(f"Chosen: {table.winner}: {table.why}"))


def progress(v: LiveView) -> None:
    """What the run is doing now, with a bar and the time left: the long step under way
    (decoding, caching features, validating, evaluating) by its name, else the epoch's batches;
    below it, the whole run's time left where it is known."""
    if v.step and v.active:
        eta = duration_text(v.step_eta_seconds) or "estimating…"
        counts = f"{v.step_done}/{v.step_total} {v.step_unit}" if v.step_total else ""
        text = " · ".join(x for x in (v.step, counts, f"ETA {eta}") if x)
        st.progress(v.step_fraction, text=md(text))
    elif v.state in ("starting", "decoding"):
        st.progress(0.0, text="Starting…")
    else:
        where = f"epoch {min(v.epoch + 1, v.epochs)}/{v.epochs} · batch {v.batch}/{v.batches}"
        eta = duration_text(v.eta_seconds) or "estimating…"
        text = where + (f" · ETA {eta}" if v.active else f" · {v.state}")
        st.progress(1.0 if v.state == "finished" else v.fraction, text=text)
    run_eta = duration_text(v.eta_seconds) if v.step and v.active else ""
    if run_eta:
        where = f"epoch {min(v.epoch + 1, v.epochs)}/{v.epochs}"
        st.caption(f"Whole run: {where}, about {run_eta} left")


def live_view() -> None:
    """Declare the view for this full run of the page: polling while the job runs, else not."""
    job: TrainingJob | None = job_registry().current
    running = job is not None and job.snapshot().active
    st.session_state[POLLING_KEY] = running
    st.fragment(_live_view, run_every=POLL_SECONDS if running else None)()


def _live_view() -> None:
    job: TrainingJob | None = job_registry().current
    v = job.snapshot() if job is not None else None
    if st.session_state.get(POLLING_KEY) and (v is None or not v.active):
        st.session_state[POLLING_KEY] = False
        st.rerun()  # it just ended: the whole page again, so the Train form unfolds for a new run
    if job is None or v is None:
        return
    st.subheader(f"Run {md(job.name)}")
    progress(v)
    if v.plan:
        st.caption(md(v.plan.capitalize()))
    candidates(v)
    note = "" if v.active else budget_note(v.run_dir)
    if note:  # the run ended well before its budget: why, in one sentence
        st.info(md(note[0].upper() + note[1:]), icon=":material/timer:")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("State", v.state)
    c2.metric("Learning rate", f"{v.lr:.2e}" if v.lr else "–")
    c3.metric("Images/s", f"{v.images_per_second:.1f}" if v.images_per_second else "–")
    last = v.epoch_metrics[-1] if v.epoch_metrics else {}
    c4.metric("Val accuracy", f"{last['val_acc']:.3f}" if "val_acc" in last else "–")
    if v.active and st.button(
        "Stop training", icon=":material/stop_circle:", type="secondary", key="stop_training"
    ):
        job.stop()
        st.toast("Stopping after this batch…")
    if v.error:
        st.error(f"Training failed: {md(v.error)}")
    left, right = st.columns(2)
    left.plotly_chart(batch_loss_figure(v.batch_losses), key="live_batch_loss")
    right.plotly_chart(
        curves_figure(v.epoch_metrics, title="Loss per epoch"), key="live_epoch_loss"
    )
    if v.epoch_metrics:
        st.plotly_chart(accuracy_figure(v.epoch_metrics), key="live_epoch_acc")
    if v.state == "finished":
        st.success("Training finished.")
        rows = [dict(which="best", **v.best), dict(which="last", **v.last)]
        cols = ["which", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5"]
        table = pd.DataFrame(rows)
        st.dataframe(table[[c for c in cols if c in table]], hide_index=True)
        st.session_state[RUN_KEY] = v.run_dir
        st.page_link(
            "app_pages/evaluate.py", label="Evaluate this model →", icon=":material/analytics:"
        )
    elif v.state == "stopped" and v.stop_reason == UNTRAINED:
        untrained = [line for line in v.log if "no epoch was trained" in line]
        st.error(
            "No model was trained: the run ended before its first epoch. "
            + (md(untrained[-1].removeprefix("warning: ")) if untrained else "")
        )
    elif v.state == "stopped":
        st.warning("Training was stopped. You can resume it from the Runs page.")
    with st.expander("Log", expanded=v.state == "failed"):
        st.code("\n".join(v.log) or "(empty)", language=None)
