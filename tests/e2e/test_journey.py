"""The journey a newcomer takes, in a real browser against a real server, on the CPU:
bundled sample dataset -> train resnet18 for an epoch at 32 px, watching the live curve ->
Evaluate (confusion matrix, gallery) -> Classify an uploaded image -> Runs.
A screenshot of each page lands in test-artifacts/."""

from __future__ import annotations

import io
import os
import re

import pytest
from conftest import goto, screenshot, settle
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TRAINING_TIMEOUT_MS = 300_000


def _fill_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def _digit_png() -> bytes:
    img = Image.new("RGB", (64, 64), (245, 243, 236))
    for x in range(20, 44):
        for y in range(12, 52):
            if abs(x - 32) > 8 or y in range(12, 16) or y in range(48, 52):
                img.putpixel((x, y), (20, 30, 90))  # a rough "0"
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_newcomer_journey(page, studio_url, studio_dirs):
    # 1. Dataset: the bundled sample, generated on first use, with its report.
    page.goto(studio_url)
    page.wait_for_selector('h2:has-text("Dataset"), h1:has-text("Dataset")')
    # the sidebar lists the app's pages, not every module of their folder (a folder named
    # "pages" made Streamlit list its panels too on a server's first page load)
    links = page.locator('[data-testid="stSidebarNav"] a')
    titles = ("Dataset", "Label", "Train", "Evaluate", "Classify", "Clean", "Runs", "Tune")
    assert links.count() == len(titles)
    assert all(links.filter(has_text=title).count() == 1 for title in titles)
    page.get_by_role("tab", name=re.compile("Sample dataset")).click()
    page.get_by_role("button", name="Use the bundled sample dataset").click()
    page.get_by_text("Train a model on this dataset").wait_for(timeout=120_000)
    settle(page)
    assert page.locator(".js-plotly-plot").count() >= 1  # images per class and split
    screenshot(page, "1-dataset")

    # 2. Train: a small, fast configuration; the live curve appears and the run finishes.
    goto(page, "Train")
    dataset_box = page.get_by_label("Dataset folder", exact=True)
    assert "digits" in dataset_box.input_value()
    # one epoch keeps the test quick; the README's screenshots show a model that has learned
    _fill_number(page, "Epochs", 12 if os.environ.get("MODELKIT_UPDATE_SCREENSHOTS") else 1)
    _fill_number(page, "Image size (px)", 32)
    _fill_number(page, "Batch size", 64)
    page.get_by_role("button", name=re.compile("Launch training")).click()
    page.get_by_text("Training loss per batch").first.wait_for(timeout=TRAINING_TIMEOUT_MS)
    page.reload()  # a refresh (a new browser session) finds the same job again
    page.get_by_text("Training loss per batch").first.wait_for(timeout=TRAINING_TIMEOUT_MS)
    page.get_by_text("Training finished.").wait_for(timeout=TRAINING_TIMEOUT_MS)
    assert page.locator(".js-plotly-plot").count() >= 2
    screenshot(page, "2-train")
    runs = [p for p in studio_dirs["runs"].iterdir() if p.is_dir()]
    assert len(runs) == 1 and (runs[0] / "checkpoints" / "best.pt").is_file()

    # 3. Evaluate: headline metrics, the confusion matrix and the gallery.
    page.get_by_role("link", name=re.compile("Evaluate this model")).click()
    page.wait_for_selector('h2:has-text("Evaluate"), h1:has-text("Evaluate")')
    page.get_by_text("Accuracy").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    settle(page)
    screenshot(page, "3-evaluate")
    page.get_by_role("tab", name=re.compile("Predictions")).click()
    gallery = page.locator('[data-testid="stImage"]:visible')
    gallery.first.wait_for()
    assert gallery.count() >= 1
    screenshot(page, "3-evaluate-gallery")

    # 4. Classify: drop an image on the real file input and read its top-k.
    goto(page, "Classify")
    page.locator('input[type="file"]').set_input_files(
        {"name": "my_digit.png", "mimeType": "image/png", "buffer": _digit_png()}
    )
    page.get_by_text("my_digit.png").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    settle(page)
    assert page.get_by_text(re.compile(r"\d\.\d")).count() > 0
    screenshot(page, "4-classify")

    # 5. Runs: the finished run is listed.
    goto(page, "Runs")
    page.get_by_text(runs[0].name).first.wait_for()
    settle(page)
    screenshot(page, "5-runs")
