"""Clean's other tabs and its last section: the journal of changes with an undo for each, the
near-duplicate groups, and retrain-and-compare.

The run pickers name each run's data set (``RunInfo.dataset_label``): runs of two data sets must
not look the same where a person picks the one before and the one after cleaning (issue #29).
"""

from __future__ import annotations

import streamlit as st

from app_pages._clean_review import act, rel, thumb
from modelkit.cleaning.compare import compare_runs
from modelkit.cleaning.finder import CleanReport
from modelkit.cleaning.journal import Journal
from modelkit.errors import ModelkitError
from modelkit.runs.members import training_config, untrained_reason
from modelkit.runs.store import ENDED_STATES, RunInfo, RunStore
from studio.state import job_registry, settings
from studio.text import md


def run_name(run: RunInfo) -> str:
    """A run as a picker shows it: its id and the data set it trained on."""
    return f"{run.id} · {run.dataset_label()}"


def changes(root: str, journal: Journal) -> None:
    """The journal's changes with an undo each: also before any scoring, since the Dataset
    page's removals of identical copies go through the same journal."""
    st.subheader("Changes")
    active = journal.active()
    for skipped in journal.skipped:  # a malformed line is named, the rest still read
        st.warning(md(skipped))
    st.caption(
        f"Written to {md(journal.path.name)} in the dataset folder; removed images are in "
        ".modelkit-trash there. Nothing is deleted."
    )
    if not active:
        st.write("No changes yet.")
        return
    st.button(
        "Undo all", key="clean_undo_all", on_click=act, args=("undo_all", root, ""),
        icon=":material/undo:",
    )  # fmt: skip
    for e in reversed(active):
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        arrow = "" if e.action == "keep" else f" → {md(e.dst)}"
        c1.markdown(f"#{e.id} **{e.action}** {md(e.src)}{arrow}")
        c2.button(
            "Undo", key=f"clean_undo_{e.id}", on_click=act,
            args=("undo", root, "", str(e.id)), icon=":material/undo:", width="stretch",
        )  # fmt: skip


def duplicates(report: CleanReport) -> None:
    st.subheader("Near-duplicates")
    if not report.groups:
        st.write("No near-duplicate images found.")
        return
    leaks = sum(g.straddles for g in report.groups)
    st.caption(f"{len(report.groups)} groups; {leaks} have images in more than one split.")
    if leaks and report.layout == "splits":
        st.button(
            "Re-split: put each group in one split", key="clean_resplit", on_click=act,
            args=("resplit", report.root, ""),
        )  # fmt: skip
    elif leaks:
        st.caption(
            "This folder's split is drawn at training time, so there is no split folder to "
            "move files between; remove the extra copies instead."
        )
    for k, g in enumerate(report.groups[:30], 1):
        tag = " (across splits)" if g.straddles else ""
        st.markdown(f"**Group {k}**{tag}")
        cols = st.columns(min(len(g.paths), 6))
        for n, (path, split, label) in enumerate(zip(g.paths, g.splits, g.labels)):
            if n < 6 and (img := thumb(path)) is not None:
                cols[n].image(img, caption=f"{split} · {md(label)} · {md(rel(report, path))}")


def compare() -> None:
    st.subheader("Retrain and compare")
    runs = [r for r in RunStore(settings().runs_dir).list() if r.state in ENDED_STATES]
    if not runs:
        st.caption("No finished runs yet: train one on the Train page.")
        return
    names = {str(r.path): run_name(r) for r in runs}
    before = st.selectbox("Run before cleaning", list(names), format_func=names.get)
    untrained = untrained_reason(before)  # an ensemble: nothing of its own to train again
    if untrained:
        said = untrained[:1].upper() + untrained[1:]
        st.caption(f"{md(said)}. Retrain those, then make the ensemble again.")
    if st.button(
        "Retrain with the same settings and seed", icon=":material/replay:",
        disabled=bool(untrained),
    ):  # fmt: skip
        try:
            job_registry().launch(training_config(before))
        except ModelkitError as exc:
            st.error(md(exc))
        else:  # the Train page's live view follows it (this page would not redraw)
            st.switch_page("app_pages/train.py")
    after = st.selectbox("Run after cleaning", list(names), index=0, format_func=names.get)
    if st.button("Compare", disabled=after == before):
        try:
            with st.spinner("Evaluating…"):
                cmp = compare_runs(before, after)
        except (ModelkitError, OSError) as exc:
            st.error(str(exc))
            return
        c1, c2 = st.columns(2)
        for col, score in ((c1, cmp.before), (c2, cmp.after)):
            col.metric(md(score.run), f"{score.accuracy:.1%}")
            col.caption(
                f"{cmp.level:.0%} bootstrap interval {score.low:.1%} – {score.high:.1%} "
                f"({score.images} {cmp.split} images)"
            )
        st.dataframe(cmp.per_class, hide_index=True)
