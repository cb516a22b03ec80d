"""Grad-CAM overlays for the Evaluate galleries: a toggle, an opacity slider and cached maps.

Maps are computed once per (checkpoint, image, class) with the run's warm Predictor and kept in
``st.cache_data``; moving the opacity slider only blends again (numpy, modelkit.serving.gradcam).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from modelkit.data.imageio import ImageLoadError
from modelkit.errors import ModelkitError
from modelkit.serving.gradcam import overlay
from modelkit.serving.predictor import resolve_checkpoint
from studio.state import cached_predictor

HELP = (
    "Where the model looked: red areas raised the predicted class's score most (Grad-CAM on the "
    "last convolutional stage), drawn on the centre crop the model saw."
)


@st.cache_data(max_entries=512, show_spinner=False)
def _explained(
    checkpoint: str, mtime_ns: int, path: str, file_mtime_ns: int, target: str
) -> tuple[np.ndarray, np.ndarray] | str:
    """(crop the model saw, map) for one image and class, or why it cannot be shown."""
    try:
        p = cached_predictor(checkpoint, mtime_ns).predict(path, explain=True, target=target)
    except (ModelkitError, ImageLoadError, OSError) as exc:
        return str(exc)
    if p.error or p.cam is None or p.view is None:
        return p.error or "no map"
    return p.view, p.cam


def cam_controls(key: str) -> float | None:
    """A toggle and, when on, an opacity slider; the opacity, or None when the overlay is off.

    Both live in one container, so the gallery drawn after them keeps its place in the page
    whether the slider is shown or not. Without it the slider took the gallery's place when the
    toggle went on: the browser dropped the thumbnails at once and showed nothing until every
    overlay was computed (seconds on a busy machine), and a screenshot taken then had none."""
    with st.container():
        if not st.toggle("Grad-CAM overlay", key=f"{key}_cam", help=HELP):
            return None
        return st.slider("Grad-CAM opacity", 0.0, 1.0, 0.5, 0.05, key=f"{key}_cam_opacity")


def cam_overlays(
    run_dir: Path, rows: list[dict], opacity: float
) -> tuple[list[np.ndarray], list[dict], list[str]]:
    """Overlays (for each row's predicted class) of the rows that could be explained, those
    rows, and the reasons for the others."""
    checkpoint = resolve_checkpoint(run_dir)
    try:
        mtime = checkpoint.stat().st_mtime_ns
    except OSError:
        return [], [], [f"{checkpoint.name}: checkpoint not found"]
    images, shown, missing = [], [], []
    with st.spinner("Computing Grad-CAM…"):
        for p in rows:
            path = Path(p["path"])
            try:
                stamp = path.stat().st_mtime_ns
            except OSError:
                missing.append(f"{path.name} (file not found)")
                continue
            got = _explained(str(checkpoint), mtime, str(path), stamp, p["predicted"])
            if isinstance(got, str):
                missing.append(f"{path.name} ({got})")
                continue
            images.append(overlay(got[0], got[1], opacity))
            shown.append(p)
    return images, shown, missing
