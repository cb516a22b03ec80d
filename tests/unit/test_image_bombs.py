"""Images built to exhaust memory or reach odd decoders are bad images, named, and the rest
of the work goes on (issue #29: a 3 KB 1,000,000x1 PNG, DDS/SPIDER files, EPS via Ghostscript).

Every test here that pushes a strip through a resize also guards ``Image.resize``: code that
would ask for a huge resize fails the test instead of allocating gigabytes.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from modelkit.data import imageio
from modelkit.data.cache import DecodedStore, ImageCache
from modelkit.data.imageio import ImageLoadError, load_image, square_resize

RESIZE_LIMIT = 4_000_000  # pixels; far above any square the tests ask for, far below a bomb


@pytest.fixture
def bounded_resize(monkeypatch):
    """Fail (instead of allocating) on any resize to more than RESIZE_LIMIT pixels."""
    real = Image.Image.resize

    def resize(self, size, *args, **kwargs):
        assert size[0] * size[1] <= RESIZE_LIMIT, f"resize to {size[0]}x{size[1]} pixels"
        return real(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)


def _strip_png(width: int = 1_000_000, height: int = 1) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, "PNG")
    return buf.getvalue()


def _png(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


# -- 1. a strip of pixels that a resize would blow up ------------------------------------------
def test_a_strip_png_is_a_bad_image_naming_the_file(tmp_path, bounded_resize):
    data = _strip_png()
    assert len(data) < 5_000  # a few KB on disk
    path = tmp_path / "strip.png"
    path.write_bytes(data)
    with pytest.raises(ImageLoadError) as info:
        load_image(str(path), min_size=256)
    assert info.value.source == str(path)
    assert "1000000x1" in info.value.reason and "50" in info.value.reason
    tall = tmp_path / "tall.png"
    tall.write_bytes(_strip_png(1, 200_000))
    with pytest.raises(ImageLoadError, match="tall.png"):
        load_image(str(tall))


def test_a_panorama_within_the_limit_is_still_read(tmp_path, bounded_resize):
    path = tmp_path / "pano.png"
    path.write_bytes(_png(size=(400, 20)))  # 20:1
    square = square_resize(load_image(str(path)), 16)
    assert square.shape == (16, 16, 3)


def test_square_resize_refuses_a_strip_before_resizing(bounded_resize):
    strip = Image.new("RGB", (1_000_000, 1), (9, 9, 9))
    with pytest.raises(ImageLoadError, match="1000000x1"):
        square_resize(strip, 256)


def test_the_decode_cache_skips_a_strip_and_keeps_the_rest(tmp_path, bounded_resize):
    good, strip = tmp_path / "good.png", tmp_path / "strip.png"
    good.write_bytes(_png())
    strip.write_bytes(_strip_png())
    cache = ImageCache([str(good), str(strip)], 256, store=DecodedStore())
    assert cache.valid.tolist() == [True, False]
    assert [name for name, _ in cache.errors] == [str(strip)]
    assert "1000000x1" in cache.errors[0][1]


@pytest.mark.parametrize("error", [MemoryError, OverflowError])
def test_memory_and_overflow_errors_while_decoding_are_bad_images(tmp_path, monkeypatch, error):
    good, odd = tmp_path / "good.png", tmp_path / "odd.png"
    good.write_bytes(_png())
    odd.write_bytes(_png(size=(41, 30)))
    real = imageio.to_rgb

    def to_rgb(img, *args):
        if img.size == (41, 30):
            raise error("cannot allocate")
        return real(img, *args)

    monkeypatch.setattr(imageio, "to_rgb", to_rgb)
    with pytest.raises(ImageLoadError, match="odd.png"):
        load_image(str(odd))
    cache = ImageCache([str(good), str(odd)], 16, store=DecodedStore())
    assert cache.valid.tolist() == [True, False] and cache.errors[0][0] == str(odd)


@pytest.mark.parametrize("error", [MemoryError, OverflowError])
def test_memory_and_overflow_errors_while_resizing_are_bad_images(monkeypatch, error):
    def resize(self, *args, **kwargs):
        raise error("cannot allocate")

    monkeypatch.setattr(Image.Image, "resize", resize)
    with pytest.raises(ImageLoadError, match="cannot decode"):
        square_resize(Image.new("RGB", (40, 30)), 16)


def test_predictor_and_server_answer_a_strip_with_a_bad_image(tmp_path, helpers, bounded_resize):
    from modelkit.serving.predictor import Predictor
    from modelkit.serving.server import BadRequest, PredictionService

    ckpt = helpers.write_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    predictor = Predictor(ckpt, device="cpu")
    good, strip = predictor.predict_many([_png(), _strip_png()], names=["ok.png", "strip.png"])
    assert good.labels and not good.error
    assert strip.error.startswith("strip.png: ") and "1000000x1" in strip.error
    with pytest.raises(BadRequest) as info:
        PredictionService(predictor).decode(_strip_png(), "strip.png")
    assert info.value.status == 400 and info.value.message.startswith("strip.png: ")


# -- 2. decoders a photo never needs -----------------------------------------------------------
def _saved(fmt: str) -> bytes:
    img = Image.new("RGB", (8, 8), (200, 10, 10))
    img = {"SPIDER": img.convert("F"), "DDS": img.convert("RGBA")}.get(fmt, img)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def no_ghostscript(monkeypatch):
    def ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript was run")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)


@pytest.mark.parametrize(
    "fmt, name", [("EPS", "a.eps"), ("EPS", "photo.jpg"), ("DDS", "b.dds"), ("SPIDER", "c.png")]
)
def test_formats_a_photo_never_comes_in_are_bad_images(tmp_path, no_ghostscript, fmt, name):
    path = tmp_path / name
    path.write_bytes(_saved(fmt))
    with pytest.raises(ImageLoadError) as info:
        load_image(str(path))
    assert info.value.source == str(path)
    assert "not an image" in info.value.reason and "JPEG" in info.value.reason


def test_a_run_goes_on_past_eps_and_dds_files(tmp_path, no_ghostscript):
    paths = []
    for name, data in [("ok.png", _png()), ("x.jpg", _saved("EPS")), ("y.png", _saved("DDS"))]:
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    cache = ImageCache(paths, 16, store=DecodedStore())
    assert cache.valid.tolist() == [True, False, False]
    assert sorted(name for name, _ in cache.errors) == sorted(paths[1:])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"])
def test_photo_formats_still_decode(fmt):
    square = square_resize(load_image(_saved(fmt)), 8)
    assert square.shape == (8, 8, 3) and np.abs(square[4, 4].astype(int) - (200, 10, 10)).max() < 8


# -- what is opened at all: regular files, inside the allowed roots where the app confines ----
def test_a_device_or_a_folder_is_not_read_as_an_image(tmp_path):
    with pytest.raises(ImageLoadError, match="a device, pipe or socket, not an image file"):
        load_image("/dev/zero")  # a run's split list from elsewhere may name it: never ends
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


def test_where_the_app_confines_an_image_outside_its_roots_is_refused(tmp_path):
    from modelkit.paths import confine_to

    inside, outside = tmp_path / "allowed", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    for folder in (inside, outside):
        Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / "a.png")
    (inside / "link.png").symlink_to(outside / "a.png")
    with confine_to([inside]):
        assert load_image(inside / "a.png").size == (8, 8)
        for path in (outside / "a.png", inside / "link.png"):
            with pytest.raises(ImageLoadError, match="outside the folders this app may open"):
                load_image(path)
    assert load_image(outside / "a.png").size == (8, 8)  # the command line is not confined
