"""Clean: find likely label errors and near-duplicates, fix them one by one with an undo for
every change, then retrain and compare.

Scoring, the journal and the comparison live in ``modelkit.cleaning``; this page draws them.
Scoring runs here with a progress bar while the job registry holds the machine (a training
launched meanwhile is refused, and the other way round): a few hundred images take under a
minute on a CPU with the bundled backbone.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from modelkit.cleaning.compare import compare_runs
from modelkit.cleaning.features import PIXELS, PRETRAINED
from modelkit.cleaning.finder import CleanReport, class_folder, find_issues, resplit
from modelkit.cleaning.journal import Journal
from modelkit.config import TrainConfig
from modelkit.data.imageio import load_image
from modelkit.errors import ModelkitError
from modelkit.paths import confine_to, resolve_allowed
from modelkit.runs.folder import RunFolder
from modelkit.runs.store import ENDED_STATES, RunStore
from studio.state import DATASET_KEY, job_registry, settings
from studio.text import md

REPORT_KEY = "clean_report"  # CleanReport of the folder scored last
MESSAGE_KEY = "clean_message"  # (kind, text) to show after a button's rerun
THUMB = 150


def _say(kind: str, text: str) -> None:
    st.session_state[MESSAGE_KEY] = (kind, text)


def _journal(root: str) -> Journal:
    with confine_to(settings().allowed_roots):
        return Journal(root)


def _act(action: str, root: str, path: str, target: str = "") -> None:
    """Button callback: one journalled change; errors are shown, never raised into the page."""
    roots = settings().allowed_roots
    try:
        with confine_to(roots):
            journal = Journal(root)
            if action == "keep":
                journal.keep(path)
            elif action == "remove":
                journal.remove(path)
            elif action == "relabel":
                report = st.session_state[REPORT_KEY]
                cls = st.session_state[target]
                journal.relabel(path, class_folder(report, path, cls))
            elif action == "undo":
                journal.undo(int(target))
            elif action == "undo_all":
                journal.undo_all()
            elif action == "resplit":
                moved = resplit(st.session_state[REPORT_KEY], journal)
                _say("success", f"Moved {len(moved)} images so each group sits in one split.")
    except (ModelkitError, OSError) as exc:
        _say("error", str(exc))


def _thumb(path: str):
    try:
        img = load_image(path)
    except ModelkitError:
        return None
    img.thumbnail((THUMB, THUMB))
    return img


def _rel(report: CleanReport, path: str) -> str:
    p = Path(path)
    return p.relative_to(report.root).as_posix() if p.is_relative_to(report.root) else path


def _sources() -> dict[str, str]:
    out = {PRETRAINED: "Bundled ImageNet backbone (EfficientNet-Lite0)"}
    try:
        runs = RunStore(settings().runs_dir).list()
    except OSError:
        runs = []
    for r in runs:
        if r.state in ENDED_STATES and r.folder.has_checkpoint():
            out[str(r.path)] = f"Run {r.id}"
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


def _review(report: CleanReport, journal: Journal) -> None:
    reviewed = journal.reviewed()
    todo = [
        (rank, i)
        for rank, i in enumerate(report.issues, 1)
        if Path(i.path).is_file() and _rel(report, i.path) not in reviewed
    ]
    flagged = sum(i.flagged for _, i in todo)
    st.subheader("Likely label errors")
    st.caption(
        f"{len(report.flagged)} of {len(report.issues)} images flagged by confident learning "
        f"({flagged} still to review); the score is the probability of the given label from "
        "heads that never saw the image. Below them, the next most doubtful images."
    )
    if not todo:
        st.success("Every ranked image has been reviewed.")
        return
    count = st.number_input(
        "Images to show", 1, len(todo), value=max(1, min(max(flagged, 8), 24, len(todo)))
    )
    cols = st.columns(4)
    for n, (rank, issue) in enumerate(todo[: int(count)]):
        with cols[n % 4].container(border=True):
            img = _thumb(issue.path)
            if img is not None:
                st.image(img)
            st.markdown(
                f"**#{rank}** {md(_rel(report, issue.path))}  \n"
                f"given **{md(issue.given)}**, suggested **{md(issue.suggested)}**, "
                f"score {issue.score:.2f}" + (" · flagged" if issue.flagged else "")
            )
            others = [c for c in report.classes if c != issue.given]
            to_key = f"clean_to_{rank}"
            if st.session_state.get(to_key) not in others:
                st.session_state[to_key] = (
                    issue.suggested if issue.suggested in others else others[0]
                )
            st.selectbox("Class", others, key=to_key, format_func=md)
            b1, b2, b3 = st.columns(3)
            args = (report.root, issue.path)
            b1.button("Keep", key=f"clean_keep_{rank}", on_click=_act, args=("keep", *args))
            b2.button(
                "Relabel", key=f"clean_relabel_{rank}", on_click=_act,
                args=("relabel", *args, to_key),
            )  # fmt: skip
            b3.button("Remove", key=f"clean_remove_{rank}", on_click=_act, args=("remove", *args))


def _journal_section(report: CleanReport, journal: Journal) -> None:
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
        "Undo all", key="clean_undo_all", on_click=_act, args=("undo_all", report.root, ""),
        icon=":material/undo:",
    )  # fmt: skip
    for e in reversed(active):
        c1, c2 = st.columns([5, 1])
        arrow = "" if e.action == "keep" else f" → {md(e.dst)}"
        c1.markdown(f"#{e.id} **{e.action}** {md(e.src)}{arrow}")
        c2.button(
            "Undo", key=f"clean_undo_{e.id}", on_click=_act,
            args=("undo", report.root, "", str(e.id)),
        )  # fmt: skip


def _duplicates(report: CleanReport) -> None:
    st.subheader("Near-duplicates")
    if not report.groups:
        st.write("No near-duplicate images found.")
        return
    leaks = sum(g.straddles for g in report.groups)
    st.caption(f"{len(report.groups)} groups; {leaks} have images in more than one split.")
    if leaks and report.layout == "splits":
        st.button(
            "Re-split: put each group in one split", key="clean_resplit", on_click=_act,
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
            if n < 6 and (img := _thumb(path)) is not None:
                cols[n].image(img, caption=f"{split} · {md(label)} · {md(_rel(report, path))}")


def _compare() -> None:
    st.subheader("Retrain and compare")
    runs = [r for r in RunStore(settings().runs_dir).list() if r.state in ENDED_STATES]
    if not runs:
        st.caption("No finished runs yet: train one on the Train page.")
        return
    names = {str(r.path): r.id for r in runs}
    before = st.selectbox("Run before cleaning", list(names), format_func=lambda p: names[p])
    if st.button("Retrain with the same settings and seed", icon=":material/replay:"):
        try:
            job_registry().launch(TrainConfig.load(RunFolder(before).config))
            st.success("Training launched; follow it on the Train page.")
        except ModelkitError as exc:
            st.error(str(exc))
    after = st.selectbox("Run after cleaning", list(names), index=0, format_func=lambda p: names[p])
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


st.header("Clean")
if message := st.session_state.pop(MESSAGE_KEY, None):
    getattr(st, message[0])(message[1])
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
    tabs = st.tabs(["Review", "Changes", "Near-duplicates"])
    with tabs[0]:
        _review(report, journal)
    with tabs[1]:
        _journal_section(report, journal)
    with tabs[2]:
        _duplicates(report)
_compare()
