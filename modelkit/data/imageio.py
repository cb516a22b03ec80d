"""Turning any image file a person has into the RGB pixels the model sees.

Every path that decodes an image (dataset check, the decode cache, the Predictor) goes
through ``load_image`` and ``square_resize`` so that training, evaluation and inference see
identical pixels.
"""

from __future__ import annotations

import io
import os
import stat
import struct
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from modelkit.errors import ModelkitError
from modelkit.paths import confined_roots, real_within

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Files that operating systems and photo tools leave behind; never counted as data.
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})
# Pixel budget per image: larger files are refused with a clear reason, not PIL's bomb warning.
MAX_PIXELS = 178_956_970
# Longest side over shortest: beyond it a file is a strip, not a photo. Resizing its short side
# to the square's blows the long side up by the same factor: a 3 KB 1,000,000x1 PNG asked for
# gigabytes. Panoramas (up to about 10:1) stay well inside.
MAX_ASPECT = 50
# The decoders a photo comes in (IMAGE_EXTENSIONS): Pillow tries no other, so a renamed EPS never
# reaches Ghostscript, nor a DDS or SPIDER file decoders that fail outside the errors below.
# (JPEG's opener also gives the MPO files many phones write.)
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
UNSUPPORTED = "not an image in a format modelkit reads (JPEG, PNG, GIF, BMP, TIFF or WebP)"
# What decoding or resizing a hostile file raises besides OSError, all meaning "bad image":
# damaged headers (ValueError, SyntaxError, struct.error), a size Pillow cannot allocate or
# represent (MemoryError, OverflowError) and codec corners Pillow leaves unimplemented.
DECODE_ERRORS = (
    ValueError, SyntaxError, TypeError, struct.error, MemoryError, OverflowError,
    NotImplementedError,
)  # fmt: skip
BACKGROUND = (255, 255, 255)

ImageSource = Union[str, os.PathLike, bytes, BinaryIO, Image.Image]


class ImageLoadError(ModelkitError, ValueError):
    """An image that cannot be used, with the file named and the reason in words."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _name(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "name", None) or "<image>"


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        _check_file(source)
    return Image.open(source, formats=FORMATS)


def _check_file(path: str | os.PathLike) -> None:
    """Only a regular file is read (a device such as /dev/zero or a pipe never ends), and, where
    the app confines what it opens (``paths.confine_to``), only one inside the allowed roots:
    a run or dataset from elsewhere may name any path on the machine."""
    info = os.stat(path)  # FileNotFoundError and PermissionError are reported by the caller
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
        raise ImageLoadError(str(path), f"is {kind}, not an image file")
    roots = confined_roots()
    if roots is not None and not real_within(path, roots):
        raise ImageLoadError(str(path), "lies outside the folders this app may open")


def check_shape(name: str, w: int, h: int) -> None:
    """Raise ImageLoadError naming ``name`` for an image with no pixels, too many, or sides
    more than MAX_ASPECT apart; checked before anything is decoded or resized."""
    if w <= 0 or h <= 0:
        raise ImageLoadError(name, "image has no pixels")
    if w * h > MAX_PIXELS:
        raise ImageLoadError(name, f"image is too large ({w}x{h} pixels, limit {MAX_PIXELS:,})")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageLoadError(
            name,
            f"image is {w}x{h} pixels: one side is more than {MAX_ASPECT} times the other, "
            "a strip rather than a photo",
        )


def to_rgb(img: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Convert any PIL mode to RGB, compositing transparency onto ``background``.

    A bare ``convert("RGB")`` on RGBA keeps whatever colour sits under transparent pixels, which is
    often garbage the model would learn from.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: scale the used range down to 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 0.0
        scale = 255.0 / 65535.0 if hi > 255 else 1.0
        arr8 = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
        arr8 = ((arr - lo) / (hi - lo or 1.0) * 255 + 0.5).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return img.convert("RGB")


def load_image(source: ImageSource, min_size: int | None = None) -> Image.Image:
    """Decode ``source`` to an upright RGB image, or raise ImageLoadError naming it and why.

    ``min_size`` lets JPEG decode at a reduced scale (``draft``) while keeping the shorter side at
    least that long: several times faster on phone photos, and harmless because we resize anyway.
    """
    name = _name(source)
    try:
        # No warnings.catch_warnings() here: it swaps process-global filters and is not
        # thread-safe (the dataset check decodes in threads), so concurrent calls leaked an
        # "error" filter. PIL may still print its bomb warning; the explicit check below refuses
        # the image either way.
        img = _open(source)
        check_shape(name, *img.size)
        if min_size and img.format == "JPEG":
            img.draft("RGB", (min_size, min_size))
        img.load()
        img = ImageOps.exif_transpose(img)
        return to_rgb(img)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(name, "file not found") from None
    except PermissionError:
        raise ImageLoadError(name, "permission denied") from None
    except IsADirectoryError:
        raise ImageLoadError(name, "is a folder, not an image") from None
    except UnidentifiedImageError:
        size = _byte_size(source)
        reason = "empty file (0 bytes)" if size == 0 else UNSUPPORTED
        raise ImageLoadError(name, reason) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(
            name, f"image is too large (decompression bomb guard: {exc})"
        ) from None
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg:
            msg = "file is truncated or corrupt"
        raise ImageLoadError(name, f"cannot decode: {msg}") from None
    except DECODE_ERRORS as exc:
        raise ImageLoadError(name, f"cannot decode: {_what(exc)}") from None


def _what(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _byte_size(source: ImageSource) -> int | None:
    if isinstance(source, (str, os.PathLike)):
        return os.path.getsize(source)
    if isinstance(source, bytes):
        return len(source)
    if isinstance(source, io.BytesIO):
        return source.getbuffer().nbytes
    return None


def resize_size_for(image_size: int) -> int:
    """Side of the stored square: the usual 0.875 centre-crop ratio (224 -> 256)."""
    return int(round(image_size / 0.875))


def square_resize(img: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` and centre-crop a ``size`` square; uint8 HxWx3.

    This is the one geometric step shared by the decode cache and the Predictor, so both see the
    same pixels; evaluation then takes a centre crop of the training size from this square.
    """
    name = getattr(img, "filename", None) or "<image>"
    w, h = img.size
    check_shape(name, w, h)  # load_image checked already; this bounds the resize for any caller
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        try:
            img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
        except DECODE_ERRORS as exc:
            raise ImageLoadError(name, f"cannot decode: {_what(exc)}") from None
    left, top = (nw - size) // 2, (nh - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).copy()
