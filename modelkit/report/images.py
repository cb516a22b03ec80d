"""Small base64 JPEGs for the report: thumbnails, never the originals, so a run with a hundred
classes still makes a file of a few megabytes that any browser opens at once."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from modelkit.data.imageio import ImageLoadError, load_image

QUALITY = 72  # JPEG quality: small files, faces and objects still recognisable at this size


def data_uri(image: Image.Image | np.ndarray, size: int) -> str:
    """A ``data:image/jpeg;base64,…`` URI of ``image`` fitted into a ``size`` square."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    image = image.convert("RGB")
    image.thumbnail((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_thumbnail(path: str | Path, size: int) -> str:
    """A thumbnail URI of an image file; raises ImageLoadError naming the file and why."""
    try:
        return data_uri(load_image(str(path), min_size=size), size)
    except OSError as exc:
        raise ImageLoadError(str(path), exc.strerror or str(exc)) from exc
