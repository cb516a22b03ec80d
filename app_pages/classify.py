"""Classify: drop images (or take a webcam photo) on a trained model and read its top-k answers.

The Predictor (modelkit.serving.predictor) is loaded once per checkpoint file and kept warm;
each image is classified once (with its Grad-CAM map) and its answer reused while only the top-k
or the opacity slider moves. The images and answers are kept in ``st.session_state``
(``KeptImages``, bounded), since the upload box forgets its files when the person opens another
page: coming back shows them again until "Clear results". A calibrated run answers "unknown"
below its threshold. The webcam sits behind a toggle, so the browser asks for the camera only
when the user wants it.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from modelkit.csvcells import safe_cell
from modelkit.data.imageio import ImageLoadError
from modelkit.runs.store import RunStore
from modelkit.serving.gradcam import overlay
from modelkit.serving.predictor import Prediction, Predictor
from studio import figures as plots
from studio.dataset_view import thumbnail_jpeg
from studio.run_picker import pick_run
from studio.state import KeptImages, cached_predictor, settings
from studio.text import md

PAGE_SIZE = 12  # image cards per page
CARD_COLUMNS = 3
THUMB_PX = 224
MAX_TOP_K = 20
MAX_IMAGE_BYTES = 50 * 1024 * 1024  # per image: a bigger upload is named and left out
KEPT_KEY = "classify_kept"  # KeptImages: the images and answers, kept across pages
BOX_KEY = "classify_box_ids"  # upload ids in the box at the last run, to see which were taken out
UPLOADS_WIDGET = "classify_files"
CAM_HELP = (
    "Where the model looked: red areas raised the top class's score most (Grad-CAM on the last "
    "convolutional stage), drawn on the centre crop the model saw."
)


def _thumbnail(data: bytes) -> bytes | None:
    try:  # letterboxed so every card has the same height and the bars line up
        return thumbnail_jpeg(data, THUMB_PX, letterbox=(240, 242, 246))
    except ImageLoadError:
        return None


def _kept() -> KeptImages:
    kept = st.session_state.get(KEPT_KEY)
    if not isinstance(kept, KeptImages):
        kept = st.session_state[KEPT_KEY] = KeptImages()
    return kept


def _box_changed() -> None:
    """Upload box callback: a file the person takes out of the box leaves the results too.
    Only a person's change calls it; leaving the page empties the box without a call, so the
    kept results stay."""
    now = {f.file_id for f in st.session_state.get(UPLOADS_WIDGET) or []}
    _kept().forget(set(st.session_state.get(BOX_KEY, ())) - now)


def classify(predictor: Predictor, model_key: tuple, kept: KeptImages) -> None:
    """Answer every kept image the model has not answered yet (all of them after a change of
    model), over every class (sliced to top-k when drawn) with its Grad-CAM map and thumbnail,
    so moving the top-k slider or coming back to the page costs nothing."""
    pending = kept.pending(model_key)
    if not pending:
        return
    with st.spinner(f"Classifying {len(pending)} file(s)…"):
        preds = predictor.predict_many(
            [k.data for k in pending],
            len(predictor.classes),
            names=[k.name for k in pending],
            explain=True,
        )
        for k, p in zip(pending, preds):
            k.prediction = p
            if k.thumb is None and not p.error:
                k.thumb = _thumbnail(k.data)


def results_table(preds: list[Prediction], k: int) -> pd.DataFrame:
    rows = []
    for p in preds:
        if p.error:
            continue
        top = ", ".join(f"{lab} {q:.1%}" for lab, q in zip(p.labels[:k], p.probabilities[:k]))
        rows.append(
            {
                "file": p.source,
                "answer": "unknown" if p.unknown else p.label,
                "top label": p.label,
                "confidence": p.confidence,
                "top-k": top,
            }
        )
    return pd.DataFrame(rows, columns=["file", "answer", "top label", "confidence", "top-k"])


def results_csv(preds: list[Prediction], k: int) -> str:
    """One row per file: label_1, probability_1, … label_k; unreadable files keep their error."""
    rows = []
    for p in preds:
        row: dict = {"file": p.source}
        for i in range(k):
            row[f"label_{i + 1}"] = p.labels[i] if i < len(p.labels) else ""
            row[f"probability_{i + 1}"] = (
                round(p.probabilities[i], 6) if i < len(p.probabilities) else ""
            )
        row["unknown"] = p.unknown if not p.error else ""
        row["error"] = p.error
        rows.append({key: safe_cell(value) for key, value in row.items()})  # never a formula
    return pd.DataFrame(rows).to_csv(index=False)


def _cards(
    preds: list[Prediction], thumbs: list[bytes | None], k: int, opacity: float | None
) -> None:
    """One card per image; ``opacity`` (None: off) draws the Grad-CAM map on what the model saw."""
    shown = [(p, t) for p, t in zip(preds, thumbs) if not p.error]
    pages = math.ceil(len(shown) / PAGE_SIZE)
    page = st.pagination(pages, key="classify_page") if pages > 1 else 1
    start = (page - 1) * PAGE_SIZE
    cols = st.columns(CARD_COLUMNS)
    for i, (p, thumb) in enumerate(shown[start : start + PAGE_SIZE]):
        with cols[i % CARD_COLUMNS].container(border=True):
            if p.unknown:
                st.markdown(f"**unknown** · best guess {md(p.label)} {p.confidence:.1%}")
                st.caption("Below the run's confidence threshold (set on the Evaluate page).")
            else:
                st.markdown(f"**{md(p.label)}** · {p.confidence:.1%}")
            if opacity is not None and p.cam is not None and p.view is not None:
                st.image(
                    overlay(p.view, p.cam, opacity),
                    caption=f"{md(p.source)} · Grad-CAM for {md(p.cam_label)}",
                    width="stretch",
                )
            elif thumb is not None:
                st.image(thumb, caption=md(p.source), width="stretch")
            else:
                st.caption(md(p.source))
            st.plotly_chart(
                plots.topk_bar(p.labels[:k], p.probabilities[:k]),
                key=f"classify_bar_{start + i}",
                config={"displayModeBar": False},
            )


# -- page -----------------------------------------------------------------------------------------
st.header("Classify")
runs = [
    r
    for r in RunStore(settings().runs_dir).list()
    if r.state != "unreadable" and r.folder.best.is_file()
]
if not runs:
    st.info("No trained model yet. Train one first; its best checkpoint is used here.")
    st.page_link(
        "app_pages/train.py", label="Go to the Train page", icon=":material/model_training:"
    )
    st.stop()

left, right = st.columns([3, 1], vertical_alignment="bottom")
with left:
    run = pick_run(runs, "classify_run", label="Model (run)")
checkpoint = run.folder.best
try:
    model_key = (str(checkpoint), checkpoint.stat().st_mtime_ns)
    predictor = cached_predictor(*model_key)
except (RuntimeError, OSError, ValueError, KeyError) as exc:
    st.error(f"Cannot load the model of {md(run.id)}: {md(exc)}")
    st.stop()
n_classes = len(predictor.classes)
with right:
    k = st.slider("Top-k", 1, min(n_classes, MAX_TOP_K), min(5, n_classes), key="classify_top_k")
acc = run.best_val_acc
st.caption(
    f"{run.state} run · {predictor.arch} · {n_classes} classes · {predictor.image_size}px input"
    + (f" · best val accuracy {acc:.1%}" if isinstance(acc, (int, float)) else "")
    + f" · on {predictor.device}"
)

if predictor.threshold > 0:
    st.caption(
        f"Calibrated (temperature {predictor.temperature:.2f}); answers **unknown** below "
        f"{predictor.threshold:.1%} confidence."
    )
files = st.file_uploader(
    "Drop images here",
    type=None,  # let anything through, so a wrong file gets a clear message instead of a refusal
    accept_multiple_files=True,
    key=UPLOADS_WIDGET,
    on_change=_box_changed,
    help="JPEG, PNG, WebP, BMP, GIF or TIFF; several at once is fine.",
)
files = list(files or [])
st.session_state[BOX_KEY] = [f.file_id for f in files]
if st.toggle("Use the webcam", key="classify_webcam", help="The browser asks for the camera."):
    photo = st.camera_input("Take a photo to classify", key="classify_camera")
    if photo is not None:
        files.append(photo)

for f in [f for f in files if f.size > MAX_IMAGE_BYTES]:
    st.error(
        f"Not classified: {f.name} is {f.size / 2**20:.0f} MB, over the "
        f"{MAX_IMAGE_BYTES // 2**20} MB limit for one image",
        icon=":material/block:",
    )
kept = _kept()
if not files:
    kept.known.clear()  # an empty box holds nothing to take twice
kept.add(f for f in files if f.size <= MAX_IMAGE_BYTES)
if not kept.items:
    st.caption("Drag and drop one or more images to classify them, or turn on the webcam.")
    st.stop()
classify(predictor, model_key, kept)
preds = [k.prediction for k in kept.items if k.prediction is not None]
thumbs = [k.thumb for k in kept.items if k.prediction is not None]

note, clear = st.columns([4, 1], vertical_alignment="center")
held = len(kept.items)
if not files:
    note.caption(
        f"{held} image(s) kept from before: the upload box empties when you open another page, "
        "the results stay until you clear them."
    )
if kept.dropped:
    note.caption(
        f"Only the newest {kept.max_images} images ({kept.max_bytes // 2**20} MB) are kept; "
        f"{kept.dropped} older one(s) were let go."
    )
clear.button(
    "Clear results", key="classify_clear", icon=":material/clear_all:", on_click=kept.clear
)
for p in preds:
    if p.error:
        st.error(f"Not classified: {md(p.error)}", icon=":material/block:")

table = results_table(preds, k)
if not table.empty:
    st.subheader(f"Results ({len(table)} image{'s' if len(table) != 1 else ''})")
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "confidence": st.column_config.ProgressColumn(
                format="percent", min_value=0, max_value=1
            )
        },
    )
    st.download_button(
        "Download results (CSV)",
        results_csv(preds, k),
        file_name=f"predictions-{run.id}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key="classify_download",
    )
    cam_on = st.toggle("Show Grad-CAM", value=True, key="classify_cam", help=CAM_HELP)
    opacity = (
        st.slider("Grad-CAM opacity", 0.0, 1.0, 0.5, 0.05, key="classify_cam_opacity")
        if cam_on
        else None
    )
    _cards(preds, thumbs, k, opacity)
