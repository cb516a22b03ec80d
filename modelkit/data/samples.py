"""A sample dataset that needs no download: scikit-learn's handwritten digits as class folders.

``load_digits`` ships inside scikit-learn (1,797 greyscale 8x8 images, ten classes), so the app and
the tests always have a real dataset to try, even offline. The digits are upscaled and drawn as dark
ink on warm paper (the same tint for every class, so colour says nothing about the label).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

COMPLETE_MARKER = ".complete"
INK = np.array([32, 44, 84], dtype=np.float32)  # dark blue
PAPER = np.array([250, 246, 236], dtype=np.float32)  # warm off-white


def default_digits_dir(data_dir: str | os.PathLike) -> Path:
    """Where the app keeps the sample: ``<data_dir>/samples/digits``."""
    return Path(data_dir) / "samples" / "digits"


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def _render(pixels: np.ndarray, image_size: int) -> Image.Image:
    """An 8x8 grid of 0..16 ink values -> an ``image_size`` RGB image."""
    ink = np.clip(pixels.astype(np.float32) / 16.0, 0.0, 1.0)
    small = Image.fromarray((ink * 255 + 0.5).astype(np.uint8), "L")
    # Bicubic from 8x8 gives soft strokes rather than visible blocks; clamp the overshoot.
    big = np.asarray(small.resize((image_size, image_size), Image.BICUBIC), dtype=np.float32)
    alpha = np.clip(big / 255.0, 0.0, 1.0)[..., None]
    rgb = PAPER * (1 - alpha) + INK * alpha
    return Image.fromarray((rgb + 0.5).astype(np.uint8), "RGB")


def _replace(tmp: Path, dest: Path) -> None:
    """Move the finished ``tmp`` folder to ``dest``, replacing an incomplete or outdated one."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def make_digits_dataset(
    dest: str | os.PathLike, image_size: int = 64, per_class: int | None = None
) -> Path:
    """Write the digits as ``dest/<digit>/<n>.png`` and return ``dest``.

    Idempotent: a folder already completed with the same settings is returned as is. The images
    are written to a temporary folder next to ``dest`` and renamed into place at the end, so an
    interrupted run never leaves a half dataset behind. ``per_class`` keeps the first that many
    images of each digit (handy for quick demos and tests).
    """
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    if per_class is not None and per_class < 1:
        raise ValueError(f"per_class must be at least 1 (or None for all), got {per_class}")
    dest = Path(dest)
    settings = {"name": "digits", "image_size": image_size, "per_class": per_class}
    if _read_marker(dest) == settings:
        return dest

    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        written: dict[int, int] = {}
        for pixels, target in zip(digits.images, digits.target):
            label = int(target)
            n = written.get(label, 0)
            if per_class is not None and n >= per_class:
                continue
            folder = tmp / str(label)
            if n == 0:
                folder.mkdir(parents=True)
            _render(pixels, image_size).save(folder / f"{n}.png", compress_level=1)
            written[label] = n + 1
        (tmp / COMPLETE_MARKER).write_text(json.dumps(settings))
        if _read_marker(dest) == settings:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return dest
        _replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if _read_marker(dest) == settings:  # lost a race to an identical writer: fine
            return dest
        raise
    return dest
