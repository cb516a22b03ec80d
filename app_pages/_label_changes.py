"""The Label page's changes and hand-off: every labelling change still in the journal with an
Undo (``modelkit.labelling.assign``; the file goes back where it was, a copy to the trash), the
files that could not be used with the reason, and "Train on these labels", which opens the
Train page on this folder (its recipe starts at ``auto``) once ``labelling.handoff`` finds
nothing in the way; with the pseudo-label box ticked, on the list of files
``labelling.pseudo`` writes instead (the images still to label are then not in the way)."""

from __future__ import annotations

import streamlit as st

from app_pages._label_pseudo import pseudo_choice
from modelkit.errors import ModelkitError
from modelkit.labelling.assign import label_changes
from modelkit.labelling.handoff import tidy_for_training, training_problems
from modelkit.labelling.pseudo import PseudoLabels, write_training_list
from modelkit.labelling.session import Labeller
from modelkit.paths import confine_to
from studio.label_state import name_of, run_change
from studio.state import DATASET_KEY, settings
from studio.text import md

SHOWN = 15  # changes listed


def _undo(entry_id: int | None) -> None:
    def done(entry) -> str:
        return f"Undid #{entry.undoes}: {md(entry.src)} → {md(entry.dst)}." if entry else ""

    run_change(lambda lab: lab.undo(entry_id), done)


def changes_panel(lab: Labeller) -> None:
    with confine_to(settings().allowed_roots):
        changes = label_changes(lab.root)
    if not changes:
        st.caption("No labelling changes yet. Each one is written to the folder's journal.")
        return
    st.button("Undo the last change", key="label_undo_last", on_click=_undo, args=(None,),
              icon=":material/undo:")  # fmt: skip
    for e in reversed(changes[-SHOWN:]):
        c1, c2 = st.columns([6, 1], vertical_alignment="center")
        c1.markdown(f"#{e.id} **{e.action}** {md(e.src)} → {md(e.dst)}")
        c2.button("Undo", key=f"label_undo_{e.id}", on_click=_undo, args=(e.id,))
    if len(changes) > SHOWN:
        st.caption(f"…and {len(changes) - SHOWN} earlier (`modelkit clean --journal` lists all).")


def bad_files_panel(lab: Labeller) -> None:
    bad = lab.table().errors + lab.folder.refused
    if not bad:
        return
    with st.expander(f"{len(bad)} file(s) left out, with the reason"):
        for path, why in bad:
            st.markdown(f"- {md(name_of(lab, path))}: {md(why)}")


def train_panel(lab: Labeller) -> None:
    pseudo = None if training_problems(lab.folder, True) else pseudo_choice(lab)
    problems = training_problems(lab.folder, from_list=pseudo is not None)
    for problem in problems:
        st.caption(f"Before training: {md(problem)}")
    if not st.button(
        "Train on these labels", key="label_train", type="primary",
        icon=":material/model_training:", disabled=bool(problems),
    ):  # fmt: skip
        return
    if pseudo is not None:
        _train_from_list(pseudo)
        return
    try:
        with confine_to(settings().allowed_roots):
            folder, problems = tidy_for_training(lab.root)
    except (ModelkitError, OSError) as exc:
        st.error(md(exc))
        return
    if problems:
        st.error("Not yet: " + "; ".join(md(p) for p in problems))
        return
    lab.refresh()
    st.session_state[DATASET_KEY] = folder.root
    st.switch_page("app_pages/train.py")


def _train_from_list(pseudo: PseudoLabels) -> None:
    """Open the Train page on the list of files (the labels and the pseudo-labels)."""
    try:
        with confine_to(settings().allowed_roots):
            path = write_training_list(pseudo)
    except (ModelkitError, OSError) as exc:
        st.error(md(exc))
        return
    st.session_state[DATASET_KEY] = str(path)
    st.switch_page("app_pages/train.py")
