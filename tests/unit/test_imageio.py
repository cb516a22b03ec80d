"""load_image must turn every file a person might have into upright RGB, or say why not."""

from __future__ import annotations

import io
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelkit.data import imageio
from modelkit.data.imageio import ImageLoadError, is_image_file, load_image

WHITE = (255, 255, 255)


def _save(img: Image.Image, path, fmt: str | None = None, **kw) -> str:
    img.save(path, fmt, **kw)
    return str(path)


def _pixel(img: Image.Image, xy=(0, 0)) -> tuple[int, int, int]:
    return img.getpixel(xy)


# --- modes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "color", "fmt", "ext"),
    [
        ("L", 128, "PNG", "png"),
        ("1", 1, "PNG", "png"),
        ("1", 0, "BMP", "bmp"),
        ("RGB", (10, 200, 30), "PNG", "png"),
        ("LA", (90, 255), "PNG", "png"),
        ("PA", (0, 255), "TIFF", "tif"),
    ],
)
def test_modes_become_rgb(tmp_path, mode, color, fmt, ext):
    img = Image.new(mode, (20, 12), color)
    if mode == "PA":
        img.putpalette([40, 50, 60] * 256)
    out = load_image(_save(img, tmp_path / f"x.{ext}", fmt))
    assert out.mode == "RGB"
    assert out.size == (20, 12)


def test_grey_and_bilevel_values(tmp_path):
    assert _pixel(load_image(_save(Image.new("L", (4, 4), 77), tmp_path / "l.png"))) == (77,) * 3
    assert _pixel(load_image(_save(Image.new("1", (4, 4), 1), tmp_path / "b.png"))) == WHITE
    assert _pixel(load_image(_save(Image.new("1", (4, 4), 0), tmp_path / "k.png"))) == (0, 0, 0)


def test_palette_without_transparency_keeps_colour(tmp_path):
    img = Image.new("P", (6, 6), 1)
    img.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    assert _pixel(load_image(_save(img, tmp_path / "p.png"))) == (200, 10, 20)


def test_palette_transparency_composited_on_white(tmp_path):
    img = Image.new("P", (6, 6), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    path = _save(img, tmp_path / "p.png", transparency=1)  # the red index is transparent
    out = load_image(path)
    assert _pixel(out, (3, 3)) == WHITE
    assert _pixel(out, (0, 0)) == (0, 0, 0)


def test_palette_gif_transparency(tmp_path):
    img = Image.new("P", (6, 6), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    out = load_image(_save(img, tmp_path / "p.gif", transparency=1))
    assert _pixel(out) == WHITE


def test_rgba_transparent_pixel_becomes_white_not_hidden_colour(tmp_path):
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent, hidden red
    img.putpixel((1, 1), (0, 0, 255, 255))
    img.putpixel((2, 2), (0, 0, 0, 128))
    out = load_image(_save(img, tmp_path / "a.png"))
    assert _pixel(out, (0, 0)) == WHITE
    assert _pixel(out, (1, 1)) == (0, 0, 255)
    assert all(120 <= v <= 135 for v in _pixel(out, (2, 2)))  # half black over white


def test_la_transparent_becomes_white(tmp_path):
    out = load_image(_save(Image.new("LA", (4, 4), (0, 0)), tmp_path / "la.png"))
    assert _pixel(out) == WHITE


def test_sixteen_bit_png_scaled_not_clipped(tmp_path):
    arr = np.full((5, 7), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    arr[0, 1] = 32768
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode.startswith("I")
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (7, 5)
    assert _pixel(out, (0, 0)) == (0, 0, 0)
    assert _pixel(out, (2, 2)) == WHITE
    assert 125 <= _pixel(out, (1, 0))[0] <= 130  # mid-grey, not saturated to 255


def test_cmyk_jpeg(tmp_path):
    path = _save(Image.new("CMYK", (16, 16), (0, 0, 0, 0)), tmp_path / "c.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    out = load_image(path)
    assert out.mode == "RGB"
    assert all(v > 240 for v in _pixel(out, (8, 8)))  # no ink = white


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    path = _save(img, tmp_path / "r.jpg", exif=exif.tobytes())
    assert Image.open(path).size == (40, 20)
    assert load_image(path).size == (20, 40)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.JPG", "JPEG"),
        ("b.jpeg", "JPEG"),
        ("c.Tif", "TIFF"),
        ("d.tiff", "TIFF"),
        ("e.WEBP", "WEBP"),
        ("f.gif", "GIF"),
        ("g.bmp", "BMP"),
        ("h.PNG", "PNG"),
    ],
)
def test_every_extension(tmp_path, name, fmt):
    path = _save(Image.new("RGB", (9, 7), (1, 2, 3)), tmp_path / name, fmt)
    assert is_image_file(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (9, 7)


def test_is_image_file():
    assert is_image_file("x/IMG.JPEG") and is_image_file("y.webp")
    assert not is_image_file("notes.txt") and not is_image_file("jpg")


def test_min_size_drafts_jpeg_but_keeps_short_side(tmp_path):
    path = _save(Image.new("RGB", (800, 400), (5, 5, 5)), tmp_path / "big.jpg")
    out = load_image(path, min_size=64)
    assert out.size[0] < 800 and min(out.size) >= 64


def test_other_sources(tmp_path):
    path = _save(Image.new("RGB", (5, 5), (9, 9, 9)), tmp_path / "s.png")
    data = Path(path).read_bytes()
    assert load_image(data).size == (5, 5)
    assert load_image(io.BytesIO(data)).size == (5, 5)
    assert load_image(Image.new("L", (3, 3))).mode == "RGB"


# --- failures --------------------------------------------------------------------------------


def _error(path, *words: str) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    err = info.value
    assert err.source == str(path)
    assert str(path) in str(err)
    for word in words:
        assert word in err.reason.lower(), err.reason
    return err


def test_truncated_jpeg(tmp_path):
    good = tmp_path / "good.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:400])
    _error(bad, "truncated")


def test_corrupt_jpeg_header(tmp_path):
    bad = tmp_path / "junk.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00\x01garbage" * 20)
    _error(bad)


def test_zero_byte_file(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    _error(empty, "empty", "0 bytes")


def test_text_named_jpg(tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a picture\n" * 10)
    _error(fake, "not an image")


def test_missing_file_and_folder(tmp_path):
    _error(tmp_path / "nope.png", "not found")
    folder = tmp_path / "dir.png"
    folder.mkdir()
    _error(folder, "folder")


def test_too_large_is_refused_before_decoding(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "huge.png")
    monkeypatch.setattr(imageio, "MAX_PIXELS", 5_000)
    err = _error(path, "too large")
    assert "100x100" in err.reason


def test_pil_bomb_guard_gives_clear_reason(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # PIL raises above twice this
    _error(path, "too large")


def test_threaded_loading_leaves_warning_filters_alone():
    """The dataset check decodes in threads; load_image must not swap global warning filters
    (warnings.catch_warnings is not thread-safe and used to leak an "error" filter)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    data = buf.getvalue()
    before = list(warnings.filters)
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            list(pool.map(lambda _: load_image(data), range(2000)))
    assert warnings.filters == before
