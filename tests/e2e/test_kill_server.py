"""kill -9 of the app's server in the middle of a training launched from the Train page: the run
folder still loads, shows as interrupted, and resuming it reaches exactly the weights of a run
that was never interrupted."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, start_server, stop_server
from PIL import Image

from modelkit.config import TrainConfig
from modelkit.evaluation.metrics import load_evaluation
from modelkit.models.checkpoint import load_checkpoint
from modelkit.runs.store import RunStore, read_metrics
from modelkit.training.loop import Trainer

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _dataset(root):
    rng = random.Random(1)
    for name, colour in {
        "red": (220, 40, 40),
        "green": (40, 190, 60),
        "blue": (40, 60, 220),
    }.items():
        (root / name).mkdir(parents=True)
        for i in range(20):
            c = tuple(max(0, min(255, v + rng.randint(-40, 40))) for v in colour)
            Image.new("RGB", (40, 40), c).save(root / name / f"{i}.png")
    return root


def _fill_number(page, label, value):
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def test_kill_9_of_the_server_mid_training_then_resume(browser, tmp_path):
    dirs = {"home": tmp_path, "data": tmp_path / "data", "runs": tmp_path / "runs"}
    dirs["data"].mkdir()
    dirs["runs"].mkdir()
    dataset = _dataset(tmp_path / "data" / "colours")
    proc, url = start_server(dirs)
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url + "/train")
        page.wait_for_selector('h1:has-text("Train"), h2:has-text("Train")')
        box = page.get_by_label("Dataset folder", exact=True)
        box.fill(str(dataset))
        box.press("Enter")
        page.wait_for_timeout(1500)
        _fill_number(page, "Epochs", 40)
        _fill_number(page, "Image size (px)", 32)
        _fill_number(page, "Batch size", 8)
        page.get_by_role("button", name=re.compile("Launch training")).click()
        deadline = time.monotonic() + 120
        last = None
        while time.monotonic() < deadline:
            found = list(dirs["runs"].glob("*/checkpoints/last.pt"))
            if found:
                last = found[0]
                break
            time.sleep(0.1)
        assert last is not None, "no checkpoint was written within 2 minutes"
        time.sleep(random.Random(7).uniform(0.0, 1.0))  # a random moment after the first epoch
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        context.close()
        if proc.poll() is None:
            stop_server(proc)

    (run,) = RunStore(dirs["runs"]).list()
    assert run.state == "interrupted"
    assert run.resumable and 1 <= run.epochs_done < 40
    read_metrics(run.path)
    load_evaluation(run.path)  # absent or whole, never a crash

    done = subprocess.run(
        [sys.executable, "-m", "modelkit", "train", "--resume", str(run.path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert RunStore(dirs["runs"]).get(run.path).state == "finished"

    config = TrainConfig.load(run.path / "config.json").replace(runs_dir=str(tmp_path / "ref"))
    reference = Trainer(config).fit()
    resumed = load_checkpoint(run.path / "checkpoints" / "last.pt")["model"]
    uninterrupted = load_checkpoint(reference.run_dir / "checkpoints" / "last.pt")["model"]
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)
