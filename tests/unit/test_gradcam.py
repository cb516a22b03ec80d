"""Grad-CAM: a map for every architecture, on the planted object a trained model must look at."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modelkit.models import registry as models
from modelkit.models.smallnet import SmallResNet
from modelkit.serving import gradcam
from modelkit.serving.predictor import Predictor


@pytest.mark.parametrize("arch", sorted(models.ARCHITECTURES))
def test_every_architecture_gets_a_map_of_the_input_size(arch):
    torch.manual_seed(0)
    model = models.build_model(arch, 3).eval()
    size = 32 if arch == "smallresnet" else 64
    x = torch.randn(2, 3, size, size)
    logits, maps = gradcam.grad_cam(model, arch, x)
    assert logits.shape == (2, 3)
    assert maps.shape == (2, size, size)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    _, chosen = gradcam.grad_cam(model, arch, x, targets=[2, None])
    assert chosen.shape == (2, size, size)


def test_bf16_and_channels_last():
    torch.manual_seed(0)
    model = models.build_model("resnet18", 2).eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16)
    logits, maps = gradcam.grad_cam(model, "resnet18", x, autocast_ctx=ctx)
    assert logits.dtype == torch.float32 and maps.shape == (2, 64, 64)
    assert np.isfinite(maps).all() and maps.max() == pytest.approx(1.0)
    # the model is left as it was: no hook, no gradient
    assert not models.cam_module(model, "resnet18")._forward_hooks
    assert all(p.grad is None for p in model.parameters())


def test_a_bad_class_or_method_is_refused():
    model = models.build_model("smallresnet", 2).eval()
    with pytest.raises(gradcam.GradCamError, match="out of range"):
        gradcam.grad_cam(model, "smallresnet", torch.randn(1, 3, 32, 32), targets=[5])
    with pytest.raises(gradcam.GradCamError, match="not one of"):
        gradcam.grad_cam(model, "smallresnet", torch.randn(1, 3, 32, 32), method="magic")


def test_overlay_blends_a_coloured_map_over_the_image():
    image = np.full((40, 40, 3), 100, np.uint8)
    cam = np.zeros((20, 20), np.float32)
    cam[5:10, 5:10] = 1.0
    assert (gradcam.overlay(image, cam, 0.0) == image).all()
    full = gradcam.overlay(image, cam, 1.0)
    assert full.shape == (40, 40, 3) and full.dtype == np.uint8
    hot, cold = full[15, 15], full[35, 35]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # red where the map is high, blue where low
    half = gradcam.overlay(image, cam, 0.5)
    assert (half != image).any() and (half != full).any()


# -- the planted object ---------------------------------------------------------------------------
SIZE, SQUARE = 32, 8
COLOURS = {0: (230, 40, 40), 1: (40, 40, 230)}  # the class is the square's colour, nothing else


def planted(n: int, seed: int):
    """Noisy images with a red or blue square (the class) and a green distractor square, each at
    a random place; returns images (N, 3, S, S in 0..1), labels and the squares' corners."""
    rng = np.random.default_rng(seed)
    images = rng.integers(60, 160, (n, SIZE, SIZE, 3)).astype(np.uint8)
    labels = rng.integers(0, 2, n)
    corners = []
    for i in range(n):
        while True:
            (r, c), (dr, dc) = rng.integers(0, SIZE - SQUARE, (2, 2))
            if abs(r - dr) >= SQUARE or abs(c - dc) >= SQUARE:  # no overlap
                break
        images[i, dr : dr + SQUARE, dc : dc + SQUARE] = (40, 200, 40)
        images[i, r : r + SQUARE, c : c + SQUARE] = COLOURS[int(labels[i])]
        corners.append((int(r), int(c)))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return x, torch.from_numpy(labels), corners


def hits(maps: np.ndarray, corners, margin: int = 2) -> float:
    inside = 0
    for cam, (r, c) in zip(maps, corners):
        pr, pc = gradcam.peak(cam)
        inside += r - margin <= pr < r + SQUARE + margin and c - margin <= pc < c + SQUARE + margin
    return inside / len(corners)


@pytest.fixture(scope="module")
def trained_on_squares():
    torch.manual_seed(0)
    model = SmallResNet(2, widths=(16, 32, 64))  # the registry's smallresnet, narrower: quick
    x, y, _ = planted(384, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _epoch in range(5):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            idx = order[start : start + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def test_the_map_peaks_on_the_square_that_decides_the_class(trained_on_squares):
    x, y, corners = planted(64, seed=1)
    logits, maps = gradcam.grad_cam(trained_on_squares, "smallresnet", x)
    assert (logits.argmax(1) == y).float().mean() >= 0.9  # the model did learn the colours
    assert hits(maps, corners) >= 0.8
    # Grad-CAM++ on the same model: measured, not assumed (the docs say which is used)
    _, plus = gradcam.grad_cam(trained_on_squares, "smallresnet", x, method="gradcam++")
    assert hits(plus, corners) >= 0.6


def test_predictor_explains_the_top_class_or_a_chosen_one(checkpoint_file, draw_image):
    predictor = Predictor(checkpoint_file, device="cpu")
    image = draw_image((200, 40, 40), "checker")
    p = predictor.predict(image, explain=True)
    assert p.cam is not None and p.cam.shape == (predictor.image_size, predictor.image_size)
    assert p.view.shape == (predictor.image_size, predictor.image_size, 3)
    assert p.cam_label == p.label
    q = predictor.predict(image, explain=True, target="blue")
    assert q.cam_label == "blue" and q.label == p.label
    assert predictor.predict(image).cam is None
    with pytest.raises(gradcam.GradCamError, match="not one of the model's classes"):
        predictor.predict(image, explain=True, target="purple")
