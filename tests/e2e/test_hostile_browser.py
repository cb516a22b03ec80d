"""Issue 16 in a real browser against a real server: what an attacker who reaches the page tries.

A folder outside the allowed roots typed on Train is refused; a run folder with wrong types shows
as unreadable and can be deleted; class names written as markdown show literally; and a WebSocket
that names a foreign host (DNS rebinding) is refused by the server."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
from urllib.parse import urlparse

import pytest
from conftest import goto, screenshot, settle
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _upgrade_status(url: str, host: str) -> str:
    """The status line the server answers a WebSocket upgrade to /_stcore/stream with ``host``."""
    port = urlparse(url).port
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /_stcore/stream HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"Origin: http://{host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: streamlit\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


def test_a_websocket_for_a_foreign_host_is_refused(studio_url):
    port = urlparse(studio_url).port
    assert " 101 " in _upgrade_status(studio_url, f"127.0.0.1:{port}") + " "
    refused = _upgrade_status(studio_url, f"evil.example:{port}")
    assert " 101" not in refused, refused


def test_an_outside_folder_typed_on_train_is_refused(page, studio_url, studio_dirs, helpers):
    outside = helpers.write_dataset(studio_dirs["home"].parent / "outside-roots", 2, per_class=4)
    before = set(os.listdir(studio_dirs["runs"]))
    page.goto(studio_url)
    goto(page, "Train")
    box = page.get_by_label("Dataset folder", exact=True)
    box.fill(str(outside))
    box.press("Tab")
    settle(page)
    # a rerun can briefly show the old form next to the new one: click the first Launch button
    page.get_by_role("button", name="Launch training").first.click()
    settle(page)
    alert = page.get_by_text("outside the folders this app may open")
    alert.first.wait_for(timeout=90_000)  # the scan and the refusal take a rerun or two
    screenshot(page, "hostile-train-outside-folder")
    page.wait_for_timeout(1500)
    assert set(os.listdir(studio_dirs["runs"])) == before  # no run started
    assert page.get_by_text("Training launched").count() == 0


def test_a_malformed_run_shows_as_unreadable_and_can_be_deleted(page, studio_url, studio_dirs):
    run = studio_dirs["runs"] / "20260101-000000-tampered"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"arch": "resnet18", "epochs": 3}))
    (run / "classes.json").write_text(json.dumps(["a", "b"]))
    (run / "status.json").write_text(json.dumps({"state": "finished", "started_at": 12345}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_acc": "high"}) + "\n")
    page.goto(studio_url)
    for title in ("Evaluate", "Classify"):  # neither page falls over on it
        goto(page, title)
        settle(page)
        assert page.locator('[data-testid="stException"]').count() == 0
    goto(page, "Runs")
    settle(page)
    page.get_by_text("This run cannot be read").first.wait_for()
    assert page.get_by_text("started_at is int").count() >= 1
    page.get_by_role("button", name="Delete run…").click()
    settle(page)
    page.get_by_text(str(run)).first.wait_for()  # the confirmation names the folder it deletes
    screenshot(page, "hostile-unreadable-run")
    page.get_by_role("button", name="Yes, delete it").click()
    settle(page)
    page.get_by_text(f"Deleted run {run.name}").first.wait_for()
    assert not run.exists()


MARKDOWN_NAMES = [
    "**bold** ![beacon](http://127.0.0.1:9/a.png)",
    "[link](http://127.0.0.1:9/b) **bold**",
]


def test_a_markdown_class_name_shows_literally(page, studio_url, studio_dirs, helpers):
    import torch

    run = studio_dirs["runs"] / "20260102-000000-shared-model"
    ckpt = helpers.write_checkpoint(run / "checkpoints" / "best.pt", classes=("a", "b"))
    payload = torch.load(ckpt, weights_only=True)
    payload["classes"] = MARKDOWN_NAMES  # a shared checkpoint names its classes as it likes
    torch.save(payload, ckpt)
    (run / "config.json").write_text(json.dumps({"arch": "resnet18", "image_size": 32}))
    (run / "status.json").write_text(json.dumps({"state": "finished"}))
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), (200, 40, 40)).save(buf, "PNG")
    photo = studio_dirs["home"] / "photo.png"
    photo.write_bytes(buf.getvalue())
    try:
        page.goto(studio_url)
        goto(page, "Classify")
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
        page.get_by_text("Results (1 image)").wait_for(timeout=120_000)
        settle(page)
        screenshot(page, "hostile-markdown-class-name")
        main = page.locator('[data-testid="stMain"]')
        text = main.inner_text().replace("\u2060", "")  # md's invisible autolink breaker
        assert "**bold**" in text  # the asterisks are shown, not turned into bold
        assert any(name.split(" **")[0] in text for name in MARKDOWN_NAMES)
        assert main.locator('a[href*="127.0.0.1:9"]').count() == 0
        assert main.locator('img[src*="127.0.0.1:9"]').count() == 0
        assert "bold" not in [t.strip() for t in main.locator("strong").all_inner_texts()]
    finally:
        shutil.rmtree(run, ignore_errors=True)
