"""The sidebar every page shows: which device trains, and how the active job is doing."""

from __future__ import annotations

import streamlit as st

from modelkit.device import describe_device
from studio.state import job_registry
from studio.text import md


@st.cache_data
def _device_label() -> str:
    return describe_device()


def render_sidebar() -> None:
    with st.sidebar:
        st.caption(f"Device: {_device_label()}")
        _job_status()


@st.fragment(run_every=2.0)
def _job_status() -> None:
    job = job_registry().current
    if job is None:
        st.caption("No training job yet.")
        return
    view = job.snapshot()
    if view.active:
        st.markdown(f"**Training** {md(job.name)}")
        if view.state == "decoding":
            total = max(view.cache_total, 1)
            st.progress(view.cache_done / total, text=f"decoding images {view.cache_done}/{total}")
        else:
            st.progress(
                view.fraction,
                text=f"epoch {view.epoch + 1}/{view.epochs}, batch {view.batch}/{view.batches}",
            )
    else:
        st.caption(f"Last job {md(job.name)}: {view.state}")
