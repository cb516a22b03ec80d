"""Image-mode bombs (issue #29, second probe): an 84 KB 16-bit PNG of 6000x6000 peaked at 0.9 GB
(a float64 copy of every pixel), RGBA at 15 bytes a pixel. The decoded size is bounded in bytes
of the file's mode, refused from the header with the file, the size and the limit named, and wide
or transparent modes are converted a strip at a time to the same pixels."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from modelkit.data import imageio
from modelkit.data.imageio import ImageLoadError, load_image, to_rgb


@pytest.fixture
def small_budget(monkeypatch):
    """A budget of 1,000 pixels, 3,000 decoded bytes (what RGB's pixels take), so the images
    here are a few KB."""
    monkeypatch.setattr(imageio, "MAX_PIXELS", 1_000)
    monkeypatch.setattr(imageio, "MAX_DECODED_BYTES", 3_000, raising=False)


def test_wide_modes_are_refused_by_their_decoded_bytes_naming_the_file(tmp_path, small_budget):
    rgba = tmp_path / "bomb_rgba.png"
    Image.new("RGBA", (30, 30)).save(rgba)  # 900 pixels of 4 bytes: 3,600 bytes
    with pytest.raises(ImageLoadError) as info:
        load_image(rgba)
    message = str(info.value)
    assert str(rgba) in message and "RGBA" in message
    assert "decoded" in message and "limit" in message

    f32 = tmp_path / "bomb_float.tif"
    Image.new("F", (30, 30)).save(f32)
    with pytest.raises(ImageLoadError, match="decoded"):
        load_image(f32)


def test_narrow_modes_under_the_same_budget_load(tmp_path, small_budget):
    for mode in ("RGB", "L", "I;16"):
        path = tmp_path / f"ok_{mode.replace(';', '')}.png"
        Image.new(mode, (30, 30)).save(path)  # 900 pixels of at most 3 bytes
        assert load_image(path).size == (30, 30)


def _reference(img: Image.Image) -> np.ndarray:
    """The whole-image conversion to_rgb did before (float64 copies of every pixel)."""
    if img.mode == "I;16":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if arr.max() > 255 else 1.0
        grey = np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
        return np.asarray(Image.fromarray(grey, "L").convert("RGB"))
    canvas = Image.new("RGBA", img.size, imageio.BACKGROUND + (255,))
    canvas.alpha_composite(img.convert("RGBA"))
    return np.asarray(canvas.convert("RGB"))


def test_strip_conversion_gives_the_whole_image_conversion(monkeypatch):
    monkeypatch.setattr(imageio, "STRIP_PIXELS", 50, raising=False)
    rng = np.random.default_rng(0)
    wide = Image.fromarray(rng.integers(0, 65535, (23, 17), dtype=np.uint16))
    rgba = Image.fromarray(rng.integers(0, 255, (23, 17, 4), dtype=np.uint8))
    for img in (wide, rgba):
        assert np.array_equal(np.asarray(to_rgb(img)), _reference(img)), img.mode


def test_a_16_bit_image_converts_without_full_size_copies(monkeypatch):
    """numpy's and Python's allocations (tracemalloc sees both; Pillow's own are not counted)
    stay far below one byte a pixel: the float64 copy was 8."""
    monkeypatch.setattr(imageio, "STRIP_PIXELS", 5_000, raising=False)
    img = Image.fromarray(np.full((500, 1000), 40_000, dtype=np.uint16))  # 500,000 pixels
    tracemalloc.start()
    try:
        out = to_rgb(img)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (156, 156, 156)
    assert peak < 500_000  # one byte a pixel
