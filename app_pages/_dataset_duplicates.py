"""The Dataset page's "Identical files" section: the groups, and a way to act on them.

Listing copies a person cannot act on only tells them to go and delete files by hand. Here one
button takes the extra copies out through the Clean journal (``modelkit.data.duplicates``): the
files move to the dataset's trash folder, the journal records each move, and "Undo" here or on
the Clean page puts them back. Nothing is deleted.
"""

from __future__ import annotations

import streamlit as st

from modelkit.cleaning.journal import TRASH_NAME, Journal
from modelkit.data.duplicates import (
    conflicting_copies,
    extra_copies,
    remove_files,
    undo_removals,
)
from modelkit.errors import ModelkitError
from modelkit.paths import confine_to
from studio.dataset_view import DatasetView
from studio.state import settings
from studio.text import md

REMOVED_KEY = "ds_dup_removed"  # (dataset root, [journal ids]) of the last removal made here
MESSAGE_KEY = "ds_dup_message"  # (kind, text) to show after a button's rerun


def _journal(root: str) -> Journal:
    with confine_to(settings().allowed_roots):
        return Journal(root)


def _remove(root: str, paths: tuple[str, ...]) -> None:
    """Button callback: move ``paths`` to the trash through the journal."""
    try:
        with confine_to(settings().allowed_roots):
            done = remove_files(Journal(root), paths)
    except (ModelkitError, OSError) as exc:
        st.session_state[MESSAGE_KEY] = ("error", f"Nothing was moved: {exc}")
        return
    st.session_state[REMOVED_KEY] = (root, done.ids)
    if done.errors:
        shown = "; ".join(done.errors[:5]) + (" …" if len(done.errors) > 5 else "")
        st.session_state[MESSAGE_KEY] = (
            "warning",
            f"{len(done.errors)} file(s) could not be moved: {shown}",
        )


def _undo(root: str, ids: tuple[int, ...]) -> None:
    """Button callback: put the files of the last removal back."""
    try:
        with confine_to(settings().allowed_roots):
            done = undo_removals(Journal(root), ids)
    except (ModelkitError, OSError) as exc:
        st.session_state[MESSAGE_KEY] = ("error", f"Could not undo: {exc}")
        return
    st.session_state.pop(REMOVED_KEY, None)
    text = f"Put back {len(done.entries)} file(s)."
    if done.errors:
        text += " Not put back: " + "; ".join(done.errors[:5])
    st.session_state[MESSAGE_KEY] = ("warning" if done.errors else "success", text)


def _last_removal(root: str) -> None:
    """The removal made here, while it is still in force, with its undo."""
    if message := st.session_state.pop(MESSAGE_KEY, None):
        getattr(st, message[0])(md(message[1]))
    removed = st.session_state.get(REMOVED_KEY)
    if not removed or removed[0] != root:
        return
    try:
        active = {e.id for e in _journal(root).active()}
    except (ModelkitError, OSError):
        return
    ids = tuple(i for i in removed[1] if i in active)
    if not ids:  # undone on the Clean page, or nothing moved
        st.session_state.pop(REMOVED_KEY, None)
        return
    text, undo = st.columns([4, 1], vertical_alignment="center")
    text.success(
        f"Moved {len(ids)} file(s) to {TRASH_NAME} in the dataset folder. The Clean journal "
        "lists each move: undo them here, or one by one on the Clean page."
    )
    undo.button("Undo", key="ds_dup_undo", icon=":material/undo:", on_click=_undo, args=(root, ids))


def duplicates_section(view: DatasetView) -> None:
    report = view.report
    st.markdown(f"##### Identical files ({len(view.duplicates)})")
    _last_removal(report.root)
    if not view.duplicates:
        st.caption("No two files are identical.")
        return
    leaks = len(report.leaks)
    st.caption(
        f"{len(view.duplicates)} group(s) of identical files, {leaks} of them across classes "
        "or splits. Identical files with different labels confuse the model; the same file in "
        "train and val makes the validation score look better than it is; a second copy in "
        "one class only counts that image twice. Keep one copy."
    )
    st.dataframe(
        view.duplicates,
        hide_index=True,
        width="stretch",
        key="ds_duplicates",
        column_config={
            "cross_class": st.column_config.CheckboxColumn("different classes"),
            "cross_split": st.column_config.CheckboxColumn("different splits"),
            "paths": st.column_config.TextColumn("files", width="large"),
            "files": st.column_config.NumberColumn("copies"),
        },
    )
    extra = extra_copies(report)
    if extra:
        st.button(
            f"Remove the extra copies ({len(extra)} files)",
            key="ds_dup_remove",
            type="primary",
            icon=":material/delete_sweep:",
            on_click=_remove,
            args=(report.root, tuple(extra)),
            help=f"Keeps one copy of each group whose copies share a label (the one in train), "
            f"and moves the others to {TRASH_NAME} through the Clean journal.",
        )
    conflicts = conflicting_copies(report)
    if conflicts:
        groups = sum(1 for g in report.duplicates if g["cross_class"])
        st.caption(
            f"{groups} group(s) are filed under different labels, and only you can say which "
            "label is right: remove the wrong copies yourself, or every copy here (undoable)."
        )
        st.button(
            f"Remove all {len(conflicts)} files with conflicting labels",
            key="ds_dup_remove_conflicts",
            icon=":material/delete:",
            on_click=_remove,
            args=(report.root, tuple(conflicts)),
        )
