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


# Bytes a decoded pixel takes in each mode a file may decode to: what decoding allocates grows
# with them, not with the pixel count alone (a 400 KB 16-bit or RGBA PNG of 179 Mpx asked for
# gigabytes). Modes not listed count as 4.
MODE_BYTES = {
    "1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "I;16": 2, "I;16L": 2, "I;16B": 2,
    "I;16N": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "RGBA": 4, "RGBa": 4, "RGBX": 4,
    "CMYK": 4, "I": 4, "F": 4,
}  # fmt: skip
# The decoded bytes an image may take: what the pixel budget allows an RGB photo, so 8-bit RGB
# keeps its limit and a mode with wider pixels gets proportionally fewer of them.
MAX_DECODED_BYTES = MAX_PIXELS * MODE_BYTES["RGB"]
# Pixels converted at a time from 16-bit, 32-bit, float and transparent modes (about 1 Mpx, a
# few MB): converting costs the RGB result plus one strip, not full-size float64 copies (25
# bytes a pixel for 16-bit grey, 15 for RGBA before).
STRIP_PIXELS = 1 << 20
WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def check_shape(name: str, w: int, h: int, mode: str = "RGB") -> None:
    """Raise ImageLoadError naming ``name`` for an image with no pixels, too many, more decoded
    bytes (in its ``mode``) than MAX_DECODED_BYTES, or sides more than MAX_ASPECT apart;
    checked from the header, before anything is decoded or resized."""
    if w <= 0 or h <= 0:
        raise ImageLoadError(name, "image has no pixels")
    if w * h > MAX_PIXELS:
        raise ImageLoadError(name, f"image is too large ({w}x{h} pixels, limit {MAX_PIXELS:,})")
    decoded = w * h * MODE_BYTES.get(mode, 4)
    if decoded > MAX_DECODED_BYTES:
        raise ImageLoadError(
            name,
            f"image is too large to decode ({w}x{h} pixels of mode {mode} take "
            f"{decoded / 2**20:,.0f} MB decoded, limit {MAX_DECODED_BYTES / 2**20:,.0f} MB)",
        )
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageLoadError(
            name,
            f"image is {w}x{h} pixels: one side is more than {MAX_ASPECT} times the other, "
            "a strip rather than a photo",
        )


def to_rgb(img: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Convert any PIL mode to RGB, compositing transparency onto ``background``.

    A bare ``convert("RGB")`` on RGBA keeps whatever colour sits under transparent pixels, which is
    often garbage the model would learn from. Wide and transparent modes are converted a strip of
    rows at a time (``_by_strips``), with the scale taken from the whole image's extremes first,
    so the pixels are those a whole-image conversion gives at a fraction of its memory.
    """
    if img.mode == "RGB":
        return img
    if img.mode in WIDE_GREY:
        # 16/32-bit greyscale: scale the used range down to 8 bits instead of clipping at 255.
        scale = 255.0 / 65535.0 if _extremes(img)[1] > 255 else 1.0
        return _by_strips(img, lambda a: np.clip(a * scale + 0.5, 0, 255).astype(np.uint8))
    if img.mode == "F":
        lo, hi = _extremes(img)
        return _by_strips(img, lambda a: ((a - lo) / (hi - lo or 1.0) * 255 + 0.5).astype(np.uint8))
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        return _by_strips(img, None, background)
    return img.convert("RGB")


def _rows(img: Image.Image):
    """(top, the rows from ``top`` as a copy) for strips of about STRIP_PIXELS."""
    w, h = img.size
    step = max(1, STRIP_PIXELS // w)
    for top in range(0, h, step):
        yield top, img.crop((0, top, w, min(h, top + step)))


def _extremes(img: Image.Image) -> tuple[float, float]:
    """The least and greatest pixel value, a strip at a time (``getextrema`` refuses I;16B)."""
    lows, highs = [], []
    for _, part in _rows(img):
        arr = np.asarray(part)
        lows.append(float(arr.min()))
        highs.append(float(arr.max()))
    return min(lows), max(highs)


def _by_strips(img: Image.Image, to_u8, background: tuple[int, int, int] = BACKGROUND):
    """``img`` in RGB, converted STRIP_PIXELS at a time: grey through ``to_u8`` (a float64
    array of one strip to uint8), or, when it is None, composited onto ``background``."""
    out = Image.new("RGB", img.size)
    for top, part in _rows(img):
        if to_u8 is not None:
            grey = Image.fromarray(to_u8(np.asarray(part, dtype=np.float64)), "L")
            out.paste(grey.convert("RGB"), (0, top))
            continue
        canvas = Image.new("RGBA", part.size, background + (255,))
        canvas.alpha_composite(part.convert("RGBA"))
        out.paste(canvas.convert("RGB"), (0, top))
    return out


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
        check_shape(name, *img.size, img.mode)
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
    check_shape(name, w, h, img.mode)  # load_image checked already; this bounds any caller's resize
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
