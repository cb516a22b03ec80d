"""Grad-CAM overlays in a real browser: a small model trained on images whose class is the
colour of a square, then Classify (upload, overlay, opacity slider; the screenshot lands in
test-artifacts/trust-classify.png) and Evaluate (the overlay toggle and opacity slider of the
confusion-cell and predictions galleries; screenshots under the test's tmp_path)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from conftest import screenshot, settle, start_server, stop_server
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
        settle(page)
        screenshot(page, "trust-classify")

    finally:
        stop_server(proc)


# -- Evaluate -------------------------------------------------------------------------------------
# Images of the gallery on show (the other tabs' panels are hidden): src, loaded width.
SHOWN = """() => Array.from(document.querySelectorAll('[data-testid="stImage"] img'))
    .filter(i => i.offsetParent !== null)
    .map(i => ({src: i.getAttribute('src'), width: i.complete ? i.naturalWidth : 0}))"""

# From now on, keep in window.__fewest the fewest gallery images the page ever showed.
WATCH = """() => {
    const shown = () => Array.from(document.querySelectorAll('[data-testid="stImage"] img'))
        .filter(i => i.offsetParent !== null).length;
    if (window.__watch) window.__watch.disconnect();
    window.__fewest = shown();
    window.__watch = new MutationObserver(() => {
        window.__fewest = Math.min(window.__fewest, shown());
    });
    window.__watch.observe(document.body, {subtree: true, childList: true, attributes: true});
}"""

# n images shown, all loaded, none of them one of `old` (the overlays replaced what was there).
LOADED = """([n, old]) => {
    const imgs = Array.from(document.querySelectorAll('[data-testid="stImage"] img'))
        .filter(i => i.offsetParent !== null);
    return imgs.length === n
        && imgs.every(i => i.complete && i.naturalWidth > 0)
        && imgs.every(i => !old.includes(i.getAttribute('src')));
}"""

# HTTP status of each src, fetched again: the server still serves the files the page shows.
STATUSES = """async (srcs) => Promise.all(srcs.map(s => fetch(s).then(r => r.status)))"""


def _shown(page) -> list[dict]:
    return page.evaluate(SHOWN)


def _wait_loaded(page, n: int, old: list[str]) -> list[str]:
    page.wait_for_function(LOADED, arg=[n, old], timeout=120_000)
    settle(page)
    shown = _shown(page)
    assert len(shown) == n and all(i["width"] > 0 for i in shown), shown
    return [i["src"] for i in shown]


def _visible(page, testid: str, text: str):
    return page.locator(f'[data-testid="{testid}"]:visible', has_text=text)


def _overlay_on(page, label: str) -> tuple[int, list[str]]:
    """Turn the visible gallery's Grad-CAM overlay on; the number of images and the overlays'
    srcs. The thumbnails must stay on the page until their overlays replace them."""
    settle(page)
    before = _shown(page)
    n = len(before)
    assert n > 0 and all(i["width"] > 0 for i in before), f"{label}: no thumbnails: {before}"
    page.evaluate(WATCH)
    _visible(page, "stCheckbox", "Grad-CAM overlay").get_by_text("Grad-CAM overlay").click()
    srcs = _wait_loaded(page, n, [i["src"] for i in before])
    assert _visible(page, "stSlider", "Grad-CAM opacity").count() == 1
    fewest = page.evaluate("() => window.__fewest")
    assert fewest == n, (
        f"{label}: the {n} images vanished ({fewest} left on the page) between the overlay "
        "toggle and the overlays"
    )
    return n, srcs


def _opacity_up(page, n: int, old: list[str]) -> list[str]:
    """One step of the visible opacity slider (0.50 -> 0.55): new overlays, all loaded."""
    slider = _visible(page, "stSlider", "Grad-CAM opacity")
    slider.get_by_role("slider").focus()
    page.keyboard.press("ArrowRight")
    slider.get_by_text("0.55").wait_for()
    return _wait_loaded(page, n, old)


def test_grad_cam_overlays_render_on_evaluate(page, trained, tmp_path):
    proc, url = start_server(trained)
    try:
        page.goto(f"{url}/evaluate")
        page.wait_for_selector('h2:has-text("Evaluate"), h1:has-text("Evaluate")', timeout=90_000)
        # the confusion-cell gallery: the thumbnails of the most confused (or first) cell
        page.get_by_text("Click a cell of the matrix").wait_for(timeout=90_000)
        page.wait_for_function(f"() => ({SHOWN})().length > 0", timeout=90_000)
        cell_n, cell = _overlay_on(page, "confusion cell")
        page.screenshot(path=str(tmp_path / "evaluate-cell-cam.png"), full_page=True)
        cell = _opacity_up(page, cell_n, cell)

        # a rerun that leaves the gallery alone: the overlays stay, loaded and served
        _visible(page, "stCheckbox", "Normalise by true class").get_by_text(
            "Normalise by true class"
        ).click()
        page.locator('[data-testid="stPlotlyChart"] text', has_text="%").first.wait_for(
            timeout=90_000
        )
        settle(page)
        assert [i["src"] for i in _shown(page)] == cell
        assert all(i["width"] > 0 for i in _shown(page))
        assert page.evaluate(STATUSES, cell) == [200] * cell_n
        page.screenshot(path=str(tmp_path / "evaluate-cell-cam-rerun.png"), full_page=True)

        # the predictions gallery, every image
        page.get_by_role("tab", name="Predictions").click()
        _visible(page, "stRadio", "Show").get_by_text("all", exact=True).click()
        page.get_by_text(re.compile(r"\d+ images; showing 1–")).wait_for(timeout=90_000)
        settle(page)
        gallery_n, gallery = _overlay_on(page, "predictions")
        gallery = _opacity_up(page, gallery_n, gallery)
        page.screenshot(path=str(tmp_path / "evaluate-gallery-cam.png"), full_page=True)

        # back on the confusion matrix, after all those reruns: the cell's overlays still there
        page.get_by_role("tab", name="Confusion matrix").click()
        settle(page)
        assert [i["src"] for i in _shown(page)] == cell
        assert page.evaluate(STATUSES, cell + gallery) == [200] * (cell_n + gallery_n)
    finally:
        stop_server(proc)
