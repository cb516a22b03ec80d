"""The sidebar every page shows: which device trains, and how the active job is doing.

The job's status polls only while a job trains: an idle app then costs no CPU. When the job it
watched ends, it redraws the page once, which declares it again without polling.
"""

from __future__ import annotations

import streamlit as st

from modelkit.device import describe_device
from studio.state import job_registry
from studio.text import md


@st.cache_data
def _device_label() -> str:
    return describe_device()


POLL_SECONDS = 2.0
POLLING_KEY = "sidebar_polling"  # bool: the last full run drew the status polling a running job


def render_sidebar() -> None:
    with st.sidebar:
        st.caption(f"Device: {_device_label()}")
        running = job_registry().active() is not None
        st.session_state[POLLING_KEY] = running
        st.fragment(_job_status, run_every=POLL_SECONDS if running else None)()


def _job_status() -> None:
    if st.session_state.get(POLLING_KEY) and job_registry().active() is None:
        st.session_state[POLLING_KEY] = False
        st.rerun()  # the job just ended: the whole page again, its status no longer polling
    job = job_registry().current
    if job is None:
        st.caption("No training job yet.")
        return
    view = job.snapshot()
    if view.active:
        st.markdown(f"**Training** {md(job.name)}")
        if view.step:  # a long step outside the batches: named as the live view names it
            text = f"{view.step} {view.step_done}/{view.step_total}"
            st.progress(view.step_fraction, text=text)
        else:
            st.progress(
                view.fraction,
                text=f"epoch {view.epoch + 1}/{view.epochs}, batch {view.batch}/{view.batches}",
            )
    else:
        st.caption(f"Last job {md(job.name)}: {view.state}")
