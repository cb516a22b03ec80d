"""The Evaluate page's report panel: build a run's one-file HTML report and download it.

The report is written by modelkit (``modelkit report RUN`` writes the same file) into the run
folder; building it can take a while on a large run (an evaluation when none is saved, Grad-CAM
for the sample images), so it is built only on a click, under a spinner, never on a rerun.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import streamlit as st

from modelkit.errors import ModelkitError
from modelkit.report import write_report
from modelkit.runs.folder import RunFolder
from studio.text import md

DEVICE = "cpu"  # a report never competes with a training job for the GPU


def _written(path: Path) -> str | None:
    """When the report file was written, as a person reads it, or None when there is none."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    except OSError:
        return None


def render(run_dir: str | Path) -> None:
    """A build button and, once a report exists, its download button and when it was written."""
    folder = RunFolder(run_dir)
    written = _written(folder.report)
    label = "Build the report again" if written else "Build report (HTML)"
    if st.button(
        label,
        key="evaluate_report_build",
        icon=":material/description:",
        help="One HTML file with the data card, settings, scores, Grad-CAM samples and exports; "
        "it opens in any browser, offline.",
    ):
        with st.spinner(f"Writing the report of {md(folder.path.name)}…", show_time=True):
            try:
                write_report(folder.path, None, DEVICE)  # out: the run folder's report
            except (ModelkitError, OSError, RuntimeError) as exc:
                st.error(f"Could not write the report of {md(folder.path.name)}: {md(exc)}")
                return
        written = _written(folder.report)
    if written is None:
        return
    try:
        data = folder.report.read_bytes()
    except OSError as exc:
        st.error(f"Cannot read {md(folder.report)}: {md(exc.strerror or exc)}")
        return
    st.download_button(
        "Download report (HTML)",
        data=data,
        file_name=f"{folder.path.name}-report.html",
        mime="text/html",
        key="evaluate_report_download",
        icon=":material/download:",
        on_click="ignore",
    )
    st.caption(f"Written {written}, {len(data) / 1e6:.1f} MB; also in the run folder.")
