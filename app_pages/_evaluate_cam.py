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


@st.cache_data(max_entries=128, show_spinner=False)
def _explained(
    checkpoint: str, mtime_ns: int, files: tuple[tuple[str, int], ...], target: str
) -> list[tuple[np.ndarray, np.ndarray] | str]:
    """(crop the model saw, map) of each (path, mtime) for one class, or why it cannot be
    shown: in batches, one forward and backward pass for a gallery's images of one class
    instead of one per image (a confusion cell's images share their predicted class)."""
    try:
        answers = cached_predictor(checkpoint, mtime_ns).predict_many(
            [path for path, _ in files], explain=True, target=target
        )
    except (ModelkitError, ImageLoadError, OSError) as exc:
        return [str(exc)] * len(files)
    out: list[tuple[np.ndarray, np.ndarray] | str] = []
    for p in answers:  # one answer per file, in order (an unreadable one carries its error)
        if p.error or p.cam is None or p.view is None:
            out.append(p.error or "no map")
        else:
            out.append((p.view, p.cam))
    return out


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
    by_class: dict[str, list[tuple[dict, tuple[str, int]]]] = {}
    for p in rows:
        path = Path(p["path"])
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            missing.append(f"{path.name} (file not found)")
            continue
        by_class.setdefault(p["predicted"], []).append((p, (str(path), stamp)))
    with st.spinner("Computing Grad-CAM…"):
        for target, items in by_class.items():
            got = _explained(str(checkpoint), mtime, tuple(f for _, f in items), target)
            for (p, (path, _)), one in zip(items, got):
                if isinstance(one, str):
                    missing.append(f"{Path(path).name} ({one})")
                    continue
                images.append(overlay(one[0], one[1], opacity))
                shown.append(p)
    return images, shown, missing
