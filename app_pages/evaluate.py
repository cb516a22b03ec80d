"""Evaluate: how good is a run's model, and where does it go wrong.

Reads what training saved (runs/<id>/evaluation/) and can re-evaluate on demand; every number
and figure comes from modelkit, this page only draws. The galleries can draw Grad-CAM overlays
(app_pages/_evaluate_cam.py); the Calibration tab (app_pages/_evaluate_calibration.py) shows
reliability before and after temperature scaling and sets the "unknown" threshold; the
Embeddings tab is in app_pages/_evaluate_embeddings.py; the Export tab
(app_pages/_evaluate_export.py) exports the model and shows how closely each export matches it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages._evaluate_calibration import calibration_tab
from app_pages._evaluate_cam import cam_controls, cam_overlays
from app_pages._evaluate_embeddings import embeddings_tab
from app_pages._evaluate_export import render as export_tab
from app_pages._evaluate_report import render as report_panel
from modelkit.data.imageio import ImageLoadError
from modelkit.evaluation.evaluate import evaluate_run
from modelkit.evaluation.metrics import Evaluation, load_evaluation
from modelkit.runs.folder import RunFolder, stamp
from modelkit.runs.members import curves_note, is_ensemble
from modelkit.runs.store import ENDED_STATES, RunInfo, RunStore, read_metrics
from studio import figures as plots
from studio.dataset_view import thumbnail_jpeg
from studio.formatting import F1_HELP, LOSS_HELP, TOP5_HELP, accuracy_help, accuracy_label
from studio.run_picker import pick_run
from studio.state import settings
from studio.text import md

THUMB_PX = 128  # thumbnails are decoded once at this size and cached
CELL_LIMIT = 24  # images shown for one confusion-matrix cell
PAGE_SIZE = 24  # images per gallery page
SPLIT_NAMES = {"val": "validation", "test": "test"}
SORTS = {
    "top losses first": (lambda p: -p["loss"]),
    "least confident first": (lambda p: p["confidence"]),
    "most confident first": (lambda p: -p["confidence"]),
}


# -- data, cached ---------------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner=False)
def _load_evaluation(run_dir: str, split: str, stamp: tuple[int, ...]) -> Evaluation | None:
    return load_evaluation(run_dir, split)


@st.cache_data(max_entries=4000, show_spinner=False)
def _thumbnail(path: str, stamp: tuple[int, ...], size: int = THUMB_PX) -> bytes | str:
    """JPEG bytes of a small thumbnail, or the reason the file cannot be shown."""
    try:
        return thumbnail_jpeg(path, size)
    except ImageLoadError as exc:
        return exc.reason


@st.cache_data(max_entries=64, show_spinner=False)
def _split_sizes(run_dir: str, version: tuple[int, ...]) -> dict[str, int]:
    """Images per split of a run, counted once per version of its split list: the list names
    every image (megabytes on a large folder), too much to parse again on every rerun."""
    return RunFolder(run_dir).split_sizes()


def _evaluable(run: RunInfo) -> bool:
    return run.state in ENDED_STATES and run.folder.can_evaluate()


# -- widgets --------------------------------------------------------------------------------------
def _run_label(run: RunInfo) -> str:
    """No accuracy here: the headline below gives the run's one figure, saying what it is."""
    return f"{run.id} · {run.state} · {run.dataset_label()}"


def _caption(p: dict) -> str:
    true, predicted = md(str(p["true"])), md(str(p["predicted"]))
    return f"{true} → {predicted} (p={p['confidence']:.2f}, loss={p['loss']:.2f})"


def _thumbnails(rows: list[dict], opacity: float | None = None) -> None:
    """Thumbnails with captions (Grad-CAM overlays when ``opacity`` is set); files that cannot be
    read are named in a caption instead."""
    if opacity is not None:
        images, shown, missing = cam_overlays(run.path, rows, opacity)
        if images:
            st.image(images, caption=[_caption(p) for p in shown], width=THUMB_PX)
        if missing:
            st.caption(md("Cannot show: " + "; ".join(missing)))
        return
    images, captions, missing = [], [], []
    for p in rows:
        path = Path(p["path"])
        thumb = _thumbnail(str(path), stamp(path)) if path.is_file() else "file not found"
        if isinstance(thumb, bytes):
            images.append(thumb)
            captions.append(_caption(p))
        else:
            missing.append(f"{path.name} ({thumb})")
    if images:
        st.image(images, caption=captions, width=THUMB_PX)
    if missing:
        st.caption(md("Cannot show: " + "; ".join(missing)))


def _evaluate_now(run: RunInfo, split: str) -> Evaluation | None:
    with st.spinner(f"Evaluating {run.id} on the {SPLIT_NAMES[split]} split…", show_time=True):
        try:
            return evaluate_run(run.path, split)
        except (RuntimeError, OSError, ValueError) as exc:
            st.error(f"Could not evaluate {md(run.id)}: {md(exc)}")
            return None


# -- sections -------------------------------------------------------------------------------------
def _headline(run: RunInfo, ev: Evaluation) -> None:
    tta = run.test_time_augmentation
    numbers = [(accuracy_label(ev.split, tta), f"{ev.accuracy:.1%}", accuracy_help(ev.split, tta))]
    if ev.top5 is not None:  # recorded from 5 classes up
        numbers.append(("Top-5 accuracy", f"{ev.top5:.1%}", TOP5_HELP))
    numbers += [
        ("Macro F1", f"{ev.macro['f1']:.3f}", F1_HELP),
        ("Loss", f"{ev.loss:.4g}", LOSS_HELP),  # a diverged run's 4290690.1 was cut short
        ("Images", f"{sum(map(sum, ev.confusion_matrix)):,}", None),
    ]
    widths = [1.5] + [1] * (len(numbers) - 1)  # the accuracy's label names how it was measured
    for col, (label, value, about) in zip(st.columns(widths), numbers):
        col.metric(label, value, border=True, help=about)


def _default_cell(ev: Evaluation) -> tuple[str, str]:
    pairs = ev.most_confused(1)
    return (pairs[0][0], pairs[0][1]) if pairs else (ev.classes[0], ev.classes[0])


def _confusion(ev: Evaluation) -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        normalise = st.toggle("Normalise by true class", key="evaluate_cm_normalise")
        fig = plots.confusion_figure(ev.confusion_matrix, ev.classes, normalise)
        event = st.plotly_chart(
            fig,
            on_select="rerun",
            selection_mode="points",
            key="evaluate_cm",
            config={"displayModeBar": False},
        )
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        points = []
    picked = None
    if points:
        pt = points[0]
        data = pt.get("customdata")
        picked = (str(data[0]), str(data[1])) if data else (str(pt.get("y")), str(pt.get("x")))
    # A click on the chart drives the two selectboxes (which also work on their own).
    if picked is None:
        st.session_state.pop("_evaluate_cm_clicked", None)
    elif picked != st.session_state.get("_evaluate_cm_clicked"):
        st.session_state["_evaluate_cm_clicked"] = picked
        st.session_state["evaluate_cell_true"], st.session_state["evaluate_cell_pred"] = picked
    default = _default_cell(ev)
    for key, value in zip(("evaluate_cell_true", "evaluate_cell_pred"), default):
        if st.session_state.get(key) not in ev.classes:
            st.session_state[key] = value
    with right:
        st.caption("Click a cell of the matrix, or pick one here, to see its images.")
        c1, c2 = st.columns(2)
        true = c1.selectbox("True class", ev.classes, key="evaluate_cell_true")
        pred = c2.selectbox("Predicted class", ev.classes, key="evaluate_cell_pred")
        rows = [p for p in ev.predictions if p["true"] == true and p["predicted"] == pred]
        rows.sort(key=SORTS["top losses first"])
        if not ev.predictions:
            st.caption("No per-image predictions were saved with this evaluation; evaluate again.")
        elif not rows:
            st.caption(f"No {md(true)} image was predicted as {md(pred)}.")
        else:
            more = f", the {CELL_LIMIT} with the highest loss" if len(rows) > CELL_LIMIT else ""
            verb = "correctly classified" if true == pred else f"predicted as {pred}"
            images = "image" if len(rows) == 1 else "images"
            st.markdown(f"**{len(rows)} {md(true)} {images} {verb}**{more}")
            _thumbnails(rows[:CELL_LIMIT], cam_controls("evaluate_cell"))


def _per_class(ev: Evaluation) -> None:
    total = sum(r["support"] for r in ev.per_class)
    table = pd.DataFrame(
        ev.per_class
        + [
            {"class": "macro average", **ev.macro, "support": total},
            {"class": "weighted average", **ev.weighted, "support": total},
        ]
    )
    number = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(
        table,
        hide_index=True,
        column_order=["class", "precision", "recall", "f1", "support"],
        column_config={"precision": number, "recall": number, "f1": number},
    )
    st.markdown("**Most confused pairs**")
    support = {r["class"]: r["support"] for r in ev.per_class}
    pairs = ev.most_confused(10)
    if not pairs:
        st.caption("No confusions: every image of this split was classified correctly.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "true": t,
                    "predicted as": p,
                    "images": n,
                    "share of true class": n / support[t] if support.get(t) else 0.0,
                }
                for t, p, n in pairs
            ]
        ),
        hide_index=True,
        column_config={"share of true class": st.column_config.NumberColumn(format="percent")},
    )


def _reset_gallery_page() -> None:
    st.session_state.pop("evaluate_gallery_page", None)


def _gallery(ev: Evaluation) -> None:
    if not ev.predictions:
        st.caption("No per-image predictions were saved with this evaluation; evaluate again.")
        return
    c1, c2, c3 = st.columns([2, 1, 1])
    chosen = c1.multiselect(
        "True classes",
        ev.classes,
        key="evaluate_gallery_classes",
        placeholder="all classes",
        on_change=_reset_gallery_page,
    )
    which = c2.radio(
        "Show",
        ["wrong", "correct", "all"],
        horizontal=True,
        key="evaluate_gallery_which",
        on_change=_reset_gallery_page,
    )
    order = c3.selectbox(
        "Sort by", list(SORTS), key="evaluate_gallery_sort", on_change=_reset_gallery_page
    )
    rows = [
        p
        for p in ev.predictions
        if (not chosen or p["true"] in chosen)
        and (which == "all" or p["correct"] == (which == "correct"))
    ]
    rows.sort(key=SORTS[order])
    if not rows:
        st.caption("No image matches these filters.")
        return
    pages = math.ceil(len(rows) / PAGE_SIZE)
    page = 1
    if pages > 1:
        page = st.pagination(pages, key="evaluate_gallery_page")
    start = (page - 1) * PAGE_SIZE
    st.caption(f"{len(rows)} images; showing {start + 1}–{min(start + PAGE_SIZE, len(rows))}")
    _thumbnails(rows[start : start + PAGE_SIZE], cam_controls("evaluate_gallery"))


def _curves(run: RunInfo) -> None:
    rows = read_metrics(run.path)
    if not rows and is_ensemble(run.config):  # not trained: say what it averages instead
        st.info(md(curves_note(run.path, run.config)), icon=":material/call_merge:")
        return
    if not rows:
        st.caption("This run has no per-epoch metrics.")
        return
    log_y = st.checkbox("Loss on a log scale", key="evaluate_log_loss")
    c1, c2 = st.columns(2)
    c1.plotly_chart(plots.curves_figure(rows, log_y=log_y), key="evaluate_loss_curve")
    c2.plotly_chart(plots.accuracy_figure(rows), key="evaluate_acc_curve")
    st.caption(md(run.summary()))


# -- page -----------------------------------------------------------------------------------------
st.header("Evaluate")
runs = [r for r in RunStore(settings().runs_dir).list() if _evaluable(r)]
if not runs:
    st.info("No finished run to evaluate yet. Train a model first; it shows up here when done.")
    st.page_link(
        "app_pages/train.py", label="Go to the Train page", icon=":material/model_training:"
    )
    st.stop()

left, middle, right = st.columns([3, 1.2, 1], vertical_alignment="bottom")
with left:
    run = pick_run(runs, "evaluate_run", format_run=_run_label)
splits = _split_sizes(str(run.path), stamp(run.folder.splits))
evaluated = run.folder.evaluated_splits()
split_options = [s for s in SPLIT_NAMES if splits.get(s) or s in evaluated]
if not split_options:
    st.warning(
        f"{run.id} has no validation or test images, so there is nothing to evaluate it on. "
        "Train with a validation share above 0."
    )
    st.stop()
if st.session_state.get("evaluate_split") not in split_options:
    st.session_state["evaluate_split"] = split_options[0]
with middle:
    split = st.radio(
        "Split", split_options, key="evaluate_split", horizontal=True, format_func=SPLIT_NAMES.get
    )

ev = _load_evaluation(
    str(run.path), split, stamp(run.folder.evaluation_report(split), run.folder.predictions(split))
)
if ev is None:
    st.info(f"{md(run.id)} has no saved evaluation of its {SPLIT_NAMES[split]} split yet.")
    if st.button("Evaluate now", type="primary", key="evaluate_now"):
        ev = _evaluate_now(run, split)
    if ev is None:
        st.stop()
elif right.button(
    "Evaluate again",
    key="evaluate_again",
    icon=":material/refresh:",
    help="Run the model over the split again (after the images changed, say).",
    width="stretch",
):
    ev = _evaluate_now(run, split) or ev

_headline(run, ev)
report_panel(run.path)

tab_cm, tab_classes, tab_gallery, tab_cal, tab_curves, tab_embeddings, tab_export = st.tabs(
    [
        "Confusion matrix",
        "Per class",
        "Predictions",
        "Calibration",
        "Training curves",
        "Embeddings",
        "Export",
    ],
    key="evaluate_tabs",
)
with tab_cm:
    _confusion(ev)
with tab_classes:
    _per_class(ev)
with tab_gallery:
    _gallery(ev)
with tab_cal:
    calibration_tab(run)
with tab_curves:
    _curves(run)
with tab_embeddings:
    embeddings_tab(run, split)
with tab_export:
    export_tab(run)
