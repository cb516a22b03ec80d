"""Grad-CAM overlays in a real browser: a small model trained on images whose class is the
colour of a square, then Classify (upload, overlay, opacity slider); the screenshot lands in
test-artifacts/trust-classify.png. Evaluate's overlays are covered by AppTest only so far."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import screenshot, start_server, stop_server
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def square_png(colour: tuple[int, int, int], seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(60, 160, (size, size, 3)).astype(np.uint8)
    r, c = rng.integers(4, size - 16, 2)
    arr[r : r + 12, c : c + 12] = colour
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def trained(tmp_path):
    from modelkit.config import TrainConfig
    from modelkit.training.loop import Trainer

    dirs = {"data": tmp_path / "data", "runs": tmp_path / "runs", "home": tmp_path}
    for base, name, colour in ((0, "red", (230, 40, 40)), (100, "blue", (40, 40, 230))):
        folder = dirs["data"] / "squares" / name
        folder.mkdir(parents=True)
        for i in range(16):
            (folder / f"{name}{i}.png").write_bytes(square_png(colour, base + i))
    dirs["runs"].mkdir()
    cfg = TrainConfig(
        data_dir=str(dirs["data"] / "squares"),
        runs_dir=str(dirs["runs"]),
        arch="smallresnet",
        weights="none",
        image_size=32,
        batch_size=8,
        epochs=3,
        precision="fp32",
        device="cpu",
        lr=0.01,
        seed=0,
    )
    assert Trainer(cfg).fit().state == "finished"
    return dirs


def _settle(page) -> None:
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"] button')", timeout=60_000
    )
    page.wait_for_timeout(500)


def test_grad_cam_overlays_render_on_classify(page, trained):
    proc, url = start_server(trained)
    try:
        # straight to the page: the first page (Dataset) may still be checking its folder, and a
        # click in the sidebar would wait behind that script run
        page.goto(f"{url}/classify")
        page.wait_for_selector('h2:has-text("Classify"), h1:has-text("Classify")', timeout=90_000)
        page.locator('input[type="file"]').set_input_files(
            [
                {
                    "name": "red.png",
                    "mimeType": "image/png",
                    "buffer": square_png((230, 40, 40), 5),
                },
                {
                    "name": "blue.png",
                    "mimeType": "image/png",
                    "buffer": square_png((40, 40, 230), 6),
                },
            ]
        )
        page.get_by_text("Grad-CAM for").first.wait_for(timeout=60_000)
        assert page.get_by_text("Grad-CAM opacity").count() == 1
        assert page.get_by_text("Use the webcam").count() == 1
        _settle(page)
        screenshot(page, "trust-classify")

    finally:
        stop_server(proc)
