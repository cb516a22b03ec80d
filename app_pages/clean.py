"""Clean: find likely label errors and near-duplicates, fix them one by one with an undo for
every change, then retrain and compare.

Scoring, the journal and the comparison live in ``modelkit.cleaning``; this page draws them (the
review grid and the feedback of each change in app_pages/_clean_review.py, the other tabs and the
comparison in app_pages/_clean_panels.py). Scoring runs here with a progress bar while the job
registry holds the machine (a training launched meanwhile is refused, and the other way round):
a few hundred images take under a minute on a CPU with the bundled backbone.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from app_pages._clean_panels import changes, compare, duplicates, run_name
from app_pages._clean_review import REPORT_KEY, feedback, review
from modelkit.cleaning.features import PIXELS, PRETRAINED
from modelkit.cleaning.finder import CleanReport, find_issues
from modelkit.cleaning.journal import JOURNAL_NAME, Journal
from modelkit.errors import ModelkitError
from modelkit.paths import confine_to, resolve_allowed
from modelkit.runs.store import ENDED_STATES, RunStore
from studio.state import DATASET_KEY, job_registry, settings
from studio.text import md


def _journal(root: str) -> Journal:
    with confine_to(settings().allowed_roots):
        return Journal(root)


def _sources() -> dict[str, str]:
    out = {PRETRAINED: "Bundled ImageNet backbone (EfficientNet-Lite0)"}
    try:
        runs = RunStore(settings().runs_dir).list()
    except OSError:
        runs = []
    for r in runs:
        if r.state in ENDED_STATES and r.folder.has_checkpoint():
            out[str(r.path)] = f"Run {run_name(r)}"
    out[PIXELS] = "Colour thumbnails (no model; a quick look)"
    return out


def _score(root: str, source: str, folds: int) -> None:
    with st.status("Scoring every image…", expanded=True) as status:
        bar = st.progress(0.0, text="decoding")
        here = threading.current_thread()

        def tell(stage: str, frac: float) -> None:
            if threading.current_thread() is here:  # decoding reports from worker threads
                bar.progress(min(frac, 1.0), text=stage)

        try:
            with job_registry().hold("label-issue scoring"):
                report = find_issues(root, source, folds, progress=tell)
        except ModelkitError as exc:
            status.update(label="Scoring failed", state="error")
            st.error(str(exc))
            return
        status.update(label=f"Scored {len(report.issues)} images", state="complete")
    st.session_state[REPORT_KEY] = report


st.header("Clean")
path = st.text_input(
    "Dataset folder", value=st.session_state.get(DATASET_KEY, ""), key="clean_path"
)
sources = _sources()
c1, c2 = st.columns([3, 1])
source = c1.selectbox("Features from", list(sources), format_func=sources.get)
folds = c2.number_input("Folds", 2, 10, 5)
root = ""
if path:
    try:
        root = str(resolve_allowed(path, settings().allowed_roots))
    except ModelkitError as exc:
        st.error(str(exc))
score = st.button("Find label issues", type="primary", disabled=not root, icon=":material/search:")
with st.container():  # always drawn, so what follows keeps its place in the page across reruns
    if score:
        _score(root, source, int(folds))
report: CleanReport | None = st.session_state.get(REPORT_KEY)
if report is not None and root and Path(report.root) != Path(root):
    st.info("The last scores are of another folder; score this one.")
    report = None
if report is not None:
    st.caption(f"Scored with {md(report.source)} in {report.seconds:.1f} s.")
    try:
        journal = _journal(report.root)
    except ModelkitError as exc:
        st.error(str(exc))
        st.stop()
    feedback(report.root, journal)
    tabs = st.tabs(["Review", "Changes", "Near-duplicates"])
    with tabs[0]:
        review(report, journal)
    with tabs[1]:
        changes(report.root, journal)
    with tabs[2]:
        duplicates(report)
elif root and (Path(root) / JOURNAL_NAME).is_file():  # changes made before any scoring here
    try:
        journal = _journal(root)
    except ModelkitError as exc:
        st.error(str(exc))
        st.stop()
    feedback(root, journal)
    changes(root, journal)
compare()
