"""Label: from a folder of unlabelled photos to a labelled dataset, asking only for the labels
that matter (issue #27).

The folder is chosen as on the Dataset page (the same picker, inside the app's allowed roots):
loose photos, or an ``unlabelled/`` folder beside class folders. Its images are embedded once
(``modelkit.labelling``: kept on disk, so a revisit or a new session reads them at once) and
drawn as a map; a person types class names and labels by a box or lasso on the map, by clicking
thumbnails, or with number keys one image at a time. Each label moves (or copies) the file into
``DATA/<class>/`` through the folder's journal, so every change can be undone. Once two classes
have a few labels the model proposes the rest, and one button accepts the sure ones. Then
"Train on these labels" opens the Train page on the folder.

This page draws; the panels are app_pages/_label_*.py, the shared state studio/label_state.py, and
every decision (what to ask, the accept bar, the moves) is the library's.
"""

from __future__ import annotations

import threading

import streamlit as st

from app_pages._dataset_sources import folder_tab
from app_pages._label_changes import bad_files_panel, changes_panel, train_panel
from app_pages._label_grid import grid_panel, like_panel, offers_panel
from app_pages._label_keys import keys_panel
from app_pages._label_map import map_panel
from app_pages._label_model import model_panel
from modelkit.errors import ModelkitError
from modelkit.labelling.session import Labeller
from modelkit.paths import confine_to
from studio.label_state import (
    BRUSH_KEY,
    CLASSES_KEY,
    COPY_KEY,
    NOT_SURE,
    SOURCE_SAVED,
    SOURCES,
    classes,
    labeller,
    model_round,
    show_message,
    typed_classes,
    unlabelled_order,
)
from studio.state import DATASET_KEY, settings
from studio.text import md

SOURCE_KEY = "label_source"
CLASSES_INPUT = "label_classes_input"
MODE_INPUT = "label_mode"
BRUSH_INPUT = "label_brush_input"


def _keep(widget: str, saved: str) -> None:
    st.session_state[saved] = st.session_state[widget]


def _embed(lab: Labeller) -> bool:
    """The feature table, with a progress bar while new images are embedded."""
    here = threading.current_thread()
    with st.status("Reading the images…", expanded=False) as status:
        bar = st.progress(0.0, text="looking for new images")

        def tell(stage: str, frac: float) -> None:
            if threading.current_thread() is here:
                bar.progress(min(frac, 1.0), text=stage)

        try:
            with confine_to(settings().allowed_roots):
                lab.refresh()
                table = lab.table(progress=tell)
        except (ModelkitError, OSError) as exc:
            status.update(label="Cannot read the folder", state="error", expanded=True)
            st.error(md(exc))
            return False
        new = f", {table.embedded} embedded now" if table.embedded else ""
        status.update(label=f"{len(table.paths)} images ready{new}", state="complete")
    return True


def _options(lab: Labeller) -> tuple[list[str], str]:
    """Class names (typed, and the folders there), move or copy, the class clicks give."""
    if CLASSES_INPUT not in st.session_state:
        st.session_state[CLASSES_INPUT] = st.session_state.get(CLASSES_KEY, "")
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.text_input(
        "Class names, separated by commas", key=CLASSES_INPUT, placeholder="cat, dog, bird"
    )
    st.session_state[CLASSES_KEY] = st.session_state[CLASSES_INPUT]
    copy = c2.toggle(
        # short: "Copy (keep the originals)" was cut short at 1280 px
        "Keep originals", value=bool(st.session_state.get(COPY_KEY, False)), key=MODE_INPUT,
        help="Off: each label moves the file into DATA/<class>/. On: copies it there.",
    )  # fmt: skip
    st.session_state[COPY_KEY] = copy
    for problem in typed_classes()[1]:
        st.warning(md(problem))
    names = classes(lab)
    choices = [*names, NOT_SURE] if names else []
    brush = ""
    if choices:
        if st.session_state.get(BRUSH_INPUT) not in choices:  # new, or its class went away
            saved = st.session_state.get(BRUSH_KEY)
            st.session_state[BRUSH_INPUT] = saved if saved in choices else choices[0]
        brush = st.radio(
            "A click or a map selection labels as", choices, horizontal=True, key=BRUSH_INPUT,
            format_func=md,
        )  # fmt: skip
        st.session_state[BRUSH_KEY] = brush
    return names, brush


def _counts(lab: Labeller) -> None:
    f = lab.folder
    per = " · ".join(f"{md(c)} {n}" for c, n in f.counts().items()) or "no classes yet"
    st.caption(f"{len(f.unlabelled)} to label · {len(f.skipped)} not sure · {per}")


st.header("Label")
show_message()
roots = settings().allowed_roots
with st.expander("Folder of photos to label", expanded=not st.session_state.get(DATASET_KEY)):
    folder_tab(roots)
root = st.session_state.get(DATASET_KEY) or ""
if not root:
    st.info("Choose a folder of photos: loose, or in an unlabelled/ folder beside class folders.")
    st.stop()
if SOURCE_KEY not in st.session_state:
    st.session_state[SOURCE_KEY] = st.session_state.get(SOURCE_SAVED, "pretrained")
source = st.selectbox(
    "Features from", list(SOURCES), key=SOURCE_KEY, format_func=SOURCES.get,
    on_change=_keep, args=(SOURCE_KEY, SOURCE_SAVED),
)  # fmt: skip
try:
    lab = labeller(root, source)
except (ModelkitError, OSError) as exc:
    st.error(f"Cannot label {md(root)}: {md(exc)}")
    st.stop()
st.caption(f"Labelling {md(lab.root)}")
if not _embed(lab):
    st.stop()
names, brush = _options(lab)
_counts(lab)
bad_files_panel(lab)
lab_round = model_round(lab)
order = unlabelled_order(lab, lab_round)
offers_panel(lab)
left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("Map")
    map_panel(lab, brush, names)
with right:
    st.subheader("One at a time")
    keys_panel(lab, order, names)
st.subheader("The model asks")
model_panel(lab, lab_round)
like_panel(lab, brush)
st.subheader("Thumbnails")
grid_panel(lab, order, brush)
st.subheader("Changes")
changes_panel(lab)
st.subheader("Train")
train_panel(lab)
