"""Decode-once cache and batched augmentation: the fast path sees the pixels the slow path sees."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from modelkit.config import TrainConfig
from modelkit.data.augment import (
    AugmentSettings,
    affine_matrices,
    eval_batch,
    normalise,
    to_float,
    train_batch,
)
from modelkit.data.cache import ImageCache
from modelkit.data.imageio import load_image, resize_size_for, square_resize
from modelkit.models.registry import IMAGENET_MEAN, IMAGENET_STD

IMAGE_SIZE = 32
SIDE = resize_size_for(IMAGE_SIZE)  # 37


@pytest.fixture
def image_paths(image_dataset, tmp_path, draw_image) -> list[str]:
    """PNGs from the dataset plus a large JPEG (decoded with draft) and a wide image."""
    paths = sorted(str(p) for p in image_dataset.rglob("*.png"))[::3]
    rng = np.random.default_rng(5)
    jpeg = tmp_path / "big.jpg"
    draw_image((200, 120, 60), "checker", (300, 200), rng).save(jpeg, quality=90)
    wide = tmp_path / "wide.png"
    draw_image((20, 120, 200), "vstripes", (90, 30), rng).save(wide)
    return [*paths, str(jpeg), str(wide)]


def slow_square(path: str, side: int = SIDE) -> np.ndarray:
    return square_resize(load_image(path, min_size=side), side)


def center_crop(square: np.ndarray, size: int) -> np.ndarray:
    """The evaluation view of a cached square, written out by hand as the reference."""
    h, w = square.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return square[top : top + size, left : left + size]


def manual_normalise(crop_u8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(crop_u8.astype(np.float32) / 255).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def test_cache_matches_the_slow_path(image_paths):
    cache = ImageCache(image_paths, SIDE, ram_budget_mb=64, workers=2)
    assert not cache.on_disk and cache.valid.all() and cache.errors == []
    assert cache.array.shape == (len(image_paths), SIDE, SIDE, 3)
    for i, path in enumerate(image_paths):
        slow = slow_square(path)
        assert np.array_equal(cache.array[i], slow), path
        assert np.array_equal(cache.batch([i])[0].numpy(), slow)
        # the evaluation view of the cached square is the slow centre crop
        got = eval_batch(cache.batch([i]), IMAGE_SIZE, channels_last=False)[0]
        want = manual_normalise(center_crop(slow, IMAGE_SIZE))
        assert torch.allclose(got, want, atol=1e-6), path


def test_predictor_preprocess_equals_cache_row(checkpoint_file, image_paths):
    from modelkit.serving.predictor import Predictor

    predictor = Predictor(checkpoint_file, device="cpu")
    assert predictor.resize_size == resize_size_for(predictor.image_size)
    cache = ImageCache(image_paths, predictor.resize_size)
    for i, path in enumerate(image_paths):
        assert np.array_equal(predictor.preprocess(path), cache.array[i]), path
        with open(path, "rb") as f:
            assert np.array_equal(predictor.preprocess(f.read()), cache.array[i])


def test_eval_batch_is_manual_normalisation():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, SIDE, SIDE, 3), dtype=np.uint8)
    out = eval_batch(torch.from_numpy(batch), IMAGE_SIZE, channels_last=True)
    assert out.shape == (3, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert out.is_contiguous(memory_format=torch.channels_last)
    top = (SIDE - IMAGE_SIZE) // 2
    for k in range(3):
        crop = batch[k, top : top + IMAGE_SIZE, top : top + IMAGE_SIZE]
        assert torch.allclose(out[k], manual_normalise(crop), atol=1e-6)
    plain = eval_batch(torch.from_numpy(batch), IMAGE_SIZE, channels_last=False)
    assert plain.is_contiguous() and torch.equal(plain, out)


def random_batch(n: int = 6, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, SIDE, SIDE, 3), dtype=np.uint8))


FULL = AugmentSettings(
    crop_scale=(0.3, 1.0),
    hflip=True,
    vflip=True,
    rotation=20,
    shear=10,
    zoom=0.2,
    brightness=0.3,
    contrast=0.3,
    saturation=0.3,
    hue=0.1,
)


def test_train_batch_is_deterministic_for_the_same_generator_state():
    batch = random_batch()
    g = torch.Generator().manual_seed(7)
    state = g.get_state()
    first = train_batch(batch, IMAGE_SIZE, FULL, g)
    g.set_state(state)
    again = train_batch(batch, IMAGE_SIZE, FULL, g)
    assert torch.equal(first, again)
    other = train_batch(batch, IMAGE_SIZE, FULL, g)  # the generator moved on
    assert not torch.equal(first, other)
    assert first.shape == (6, 3, IMAGE_SIZE, IMAGE_SIZE) and torch.isfinite(first).all()
    assert first.is_contiguous(memory_format=torch.channels_last)
    # colour jitter keeps pixels in range: at most the normalised values of 0 and 1
    lo = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    hi = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    per_channel = first.permute(1, 0, 2, 3).reshape(3, -1)
    assert (per_channel.min(1).values >= lo - 1e-5).all()
    assert (per_channel.max(1).values <= hi + 1e-5).all()


def whole_square_resized(batch: torch.Tensor) -> torch.Tensor:
    x = to_float(batch)
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    return normalise(x, channels_last=False)


def test_full_crop_without_flip_is_a_resize_of_the_square():
    batch = random_batch()
    settings = AugmentSettings(crop_scale=(1.0, 1.0), hflip=False)
    g = torch.Generator().manual_seed(0)
    out = train_batch(batch, IMAGE_SIZE, settings, g, channels_last=False)
    assert torch.allclose(out, whole_square_resized(batch), atol=1e-4)


def test_flip_gives_the_mirror_image():
    batch = random_batch(1).expand(16, -1, -1, -1)
    settings = AugmentSettings(crop_scale=(1.0, 1.0), hflip=True)
    out = train_batch(batch, IMAGE_SIZE, settings, torch.Generator().manual_seed(3), False)
    plain = whole_square_resized(batch[:1])[0]
    flipped = plain.flip(-1)
    kinds = []
    for img in out:
        if torch.allclose(img, plain, atol=1e-4):
            kinds.append("plain")
        elif torch.allclose(img, flipped, atol=1e-4):
            kinds.append("flipped")
        else:
            pytest.fail("an output is neither the image nor its mirror")
    assert set(kinds) == {"plain", "flipped"}


@pytest.mark.parametrize("scale", [(1.0, 1.0), (0.5, 0.5), (0.2, 0.9)])
def test_random_crop_area_stays_in_the_scale_range(scale):
    theta = affine_matrices(4000, AugmentSettings(crop_scale=scale), torch.Generator())
    area = theta[:, :, :2].det().abs()  # fraction of the square the output samples
    assert area.min() >= scale[0] - 1e-4 and area.max() <= scale[1] + 1e-4
    assert theta[:, :, 2].abs().max() <= 1 + 1e-6  # the crop never leaves the square
    ratio = theta[:, 0, 0].abs() / theta[:, 1, 1].abs()
    assert ratio.min() >= 3 / 4 - 1e-4 and ratio.max() <= 4 / 3 + 1e-4


def test_settings_from_config():
    cfg = TrainConfig(crop_scale_min=0.5, hflip=False, vflip=True, rotation=15.0, hue=0.1)
    s = AugmentSettings.from_config(cfg)
    assert s.crop_scale == (0.5, 1.0) and not s.hflip and s.vflip
    assert s.rotation == 15.0 and s.hue == 0.1


def test_augment_settings_are_the_config_augmentation_group():
    """Every augmentation field of the config reaches the augmenter, with the same default."""
    from modelkit.config import schema

    group = {s.name for s in schema() if s.group == "augmentation"}
    fields = {f.name for f in dataclasses.fields(AugmentSettings)}
    assert fields == (group - {"crop_scale_min", "crop_scale_max"}) | {"crop_scale"}
    assert AugmentSettings.from_config(TrainConfig()) == AugmentSettings()


def test_memmap_cache_when_the_ram_budget_is_zero(image_paths, tmp_path):
    in_ram = ImageCache(image_paths, SIDE, ram_budget_mb=1024)
    on_disk = ImageCache(image_paths, SIDE, ram_budget_mb=0, spill_dir=tmp_path / "spill")
    assert on_disk.on_disk and not in_ram.on_disk
    assert isinstance(on_disk.array, np.memmap)
    assert np.array_equal(np.asarray(on_disk.array), in_ram.array)
    assert torch.equal(on_disk.batch([2, 0, 1]), in_ram.batch([2, 0, 1]))
    assert list((tmp_path / "spill").iterdir()) == []  # unlinked: nothing left behind
    assert on_disk.nbytes == len(image_paths) * SIDE * SIDE * 3


def test_corrupt_file_is_kept_out_and_explained(image_paths, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing useful")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    paths = [image_paths[0], str(bad), image_paths[1], str(empty), str(tmp_path / "gone.png")]
    progress = []
    cache = ImageCache(paths, SIDE, progress=lambda d, t: progress.append((d, t)))
    assert cache.valid.tolist() == [True, False, True, False, False]
    reasons = dict(cache.errors)
    assert set(reasons) == {str(bad), str(empty), str(tmp_path / "gone.png")}
    assert "empty" in reasons[str(empty)] and "not found" in reasons[str(tmp_path / "gone.png")]
    assert np.array_equal(cache.array[2], slow_square(image_paths[1]))
    assert progress[-1] == (5, 5)


def test_stop_while_decoding(image_paths):
    cache = ImageCache(image_paths, SIDE, should_stop=lambda: True)
    assert not cache.valid.any() and cache.errors == []


def test_small_images_are_upscaled_to_the_square(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (5, 9), (10, 200, 30)).save(path)
    cache = ImageCache([str(path)], SIDE)
    assert cache.valid[0] and (cache.array[0] == (10, 200, 30)).all()
