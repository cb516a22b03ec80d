"""Clean's review grid and what every change says back.

Each image's three actions are full-width buttons stacked under it, each with its own icon: side
by side in a grid card they were cut to "K…", "R…", "R…" at laptop widths, and Relabel could not
be told from Remove (issue #29). A change then leaves a line naming the file and where it went,
with an Undo, and a toast, since the card a person clicked has left the grid by then.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from modelkit.cleaning.finder import CleanReport, class_folder, resplit
from modelkit.cleaning.journal import TRASH_NAME, Entry, Journal
from modelkit.data.imageio import load_image
from modelkit.errors import ModelkitError
from modelkit.paths import confine_to
from studio.state import settings
from studio.text import md

REPORT_KEY = "clean_report"  # CleanReport of the folder scored last
FEEDBACK_KEY = "clean_feedback"  # Feedback of the last change, shown until the next one
THUMB = 150
COLUMNS = 4
ICONS = {"keep": ":material/check:", "relabel": ":material/label:", "remove": ":material/delete:"}


@dataclass(frozen=True)
class Feedback:
    """What the last button did, for the folder it did it in; ``undo`` is the id of the change
    an Undo next to the line reverses (0: nothing to undo), ``toast`` whether to pop it up."""

    root: str
    kind: str  # success | error
    text: str
    undo: int = 0
    toast: bool = True


def _tell(root: str, kind: str, text: str, undo: int = 0) -> None:
    st.session_state[FEEDBACK_KEY] = Feedback(root, kind, text, undo)


def said(entry: Entry) -> str:
    """One change in words a person checks against the folder: which file went where."""
    src, dst = md(entry.src), md(entry.dst)
    if entry.action == "keep":
        return f"Kept {src} in {md(Path(entry.src).parent.as_posix())}; marked as reviewed"
    if entry.action == "relabel":
        return f"Moved {src} to {md(Path(entry.dst).parent.name)} (now {dst})"
    if entry.action == "remove":
        return f"Moved {src} to the trash ({dst}); nothing is deleted"
    if entry.action == "undo":
        if entry.src == entry.dst:
            return f"Undid #{entry.undoes}: {src} is back in the review"
        return f"Undid #{entry.undoes}: {dst} is back"
    return f"{entry.action.capitalize()}: {src} → {dst}"


def act(action: str, root: str, path: str, target: str = "") -> None:
    """Button callback: one journalled change, then a line saying what it did; errors are
    shown, never raised into the page."""
    try:
        with confine_to(settings().allowed_roots):
            journal = Journal(root)
            if action == "keep":
                entry = journal.keep(path)
            elif action == "remove":
                entry = journal.remove(path)
            elif action == "relabel":
                report = st.session_state[REPORT_KEY]
                entry = journal.relabel(path, class_folder(report, path, st.session_state[target]))
            elif action == "undo":
                entry = journal.undo(int(target))
            elif action == "undo_all":
                undone = journal.undo_all()
                text = f"Undid {len(undone)} changes; every file is back where it was"
                return _tell(root, "success", text)
            elif action == "resplit":
                moved = resplit(st.session_state[REPORT_KEY], journal)
                text = f"Moved {len(moved)} images so each group sits in one split"
                return _tell(root, "success", text)
            else:
                raise ValueError(f"unknown action {action!r}")
    except (ModelkitError, OSError) as exc:
        return _tell(root, "error", str(exc))
    _tell(root, "success", said(entry), 0 if entry.action == "undo" else entry.id)


def feedback(root: str, journal: Journal) -> None:
    """The last change's line (with an Undo while the change stands) and, once, its toast."""
    fb: Feedback | None = st.session_state.get(FEEDBACK_KEY)
    if fb is None or Path(fb.root) != Path(root):
        return
    if fb.toast:
        st.toast(fb.text, icon=":material/error:" if fb.kind == "error" else ":material/check:")
        st.session_state[FEEDBACK_KEY] = Feedback(fb.root, fb.kind, fb.text, fb.undo, False)
    if fb.kind == "error":
        st.error(fb.text)
        return
    live = fb.undo and any(e.id == fb.undo for e in journal.active())
    c1, c2 = st.columns([5, 1], vertical_alignment="center")
    c1.success(fb.text)
    if live:
        c2.button(
            "Undo", key="clean_feedback_undo", on_click=act, args=("undo", root, "", str(fb.undo)),
            icon=":material/undo:", width="stretch",
        )  # fmt: skip


def thumb(path: str):
    try:
        img = load_image(path)
    except ModelkitError:
        return None
    img.thumbnail((THUMB, THUMB))
    return img


def rel(report: CleanReport, path: str) -> str:
    p = Path(path)
    return p.relative_to(report.root).as_posix() if p.is_relative_to(report.root) else path


def _card(report: CleanReport, rank: int, issue) -> None:
    img = thumb(issue.path)
    if img is not None:
        st.image(img)
    st.markdown(
        f"**#{rank}** {md(rel(report, issue.path))}  \n"
        f"given **{md(issue.given)}**, suggested **{md(issue.suggested)}**, "
        f"score {issue.score:.2f}" + (" · flagged" if issue.flagged else "")
    )
    others = [c for c in report.classes if c != issue.given]
    to_key = f"clean_to_{rank}"
    if st.session_state.get(to_key) not in others:
        st.session_state[to_key] = issue.suggested if issue.suggested in others else others[0]
    st.selectbox("Relabel to", others, key=to_key, format_func=md)
    args = (report.root, issue.path)
    trash = f"{TRASH_NAME}/{rel(report, issue.path)}"
    for action, label, extra, why in (
        ("keep", "Keep", (), f"The label {issue.given} is right: mark the image reviewed."),
        ("relabel", "Relabel", (to_key,), "Move the image to the class chosen above."),
        ("remove", "Remove", (), f"Move the image to {trash} (nothing is deleted)."),
    ):
        st.button(
            label, key=f"clean_{action}_{rank}", on_click=act, args=(action, *args, *extra),
            icon=ICONS[action], width="stretch", help=md(why),
        )  # fmt: skip


def review(report: CleanReport, journal: Journal) -> None:
    reviewed = journal.reviewed()
    todo = [
        (rank, i)
        for rank, i in enumerate(report.issues, 1)
        if Path(i.path).is_file() and rel(report, i.path) not in reviewed
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
    cols = st.columns(COLUMNS)
    for n, (rank, issue) in enumerate(todo[: int(count)]):
        with cols[n % COLUMNS].container(border=True):
            _card(report, rank, issue)
