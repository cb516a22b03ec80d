"""Nothing lost: kill -9 a training process at a random moment, and the run folder still loads,
shows as interrupted, and resumes from last.pt to exactly the weights of a run never killed."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

import modelkit
from modelkit.cli.main import main
from modelkit.evaluation.metrics import load_evaluation
from modelkit.events import CheckpointSaved
from modelkit.jobs import JobRegistry
from modelkit.models.checkpoint import load_checkpoint
from modelkit.runs.store import RunStore, load_run, read_json, read_metrics, run_state
from modelkit.training.loop import Trainer

REPO = Path(modelkit.__file__).resolve().parent.parent
EPOCHS = 5  # epochs after the first take ~0.3 s each here: room to kill mid-run
KILL_WINDOW_S = 0.6  # the kill lands this long (at most) after the first last.pt appears
FAST = [
    "--weights", "none", "--image-size", "32", "--batch-size", "8",
    "--precision", "fp32", "--device", "cpu", "--seed", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory, helpers) -> Path:
    base = tmp_path_factory.mktemp("crash_data")
    return helpers.write_dataset(base / "data", num_classes=2, per_class=8, seed=3)


@pytest.fixture(scope="module")
def baseline(data, tmp_path_factory, helpers) -> dict:
    """Final weights of the same run, never interrupted."""
    runs = tmp_path_factory.mktemp("crash_baseline")
    result = Trainer(helpers.fast_config(data, runs, epochs=EPOCHS)).fit()
    assert result.state == "finished"
    return load_checkpoint(result.run_dir / "checkpoints" / "last.pt")


def assert_same_weights(run_dir: Path, expected: dict) -> None:
    got = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert got["epoch"] == expected["epoch"] == EPOCHS
    assert got["model"].keys() == expected["model"].keys()
    for key, tensor in expected["model"].items():
        assert torch.equal(got["model"][key], tensor), f"{key} differs after kill + resume"


def assert_every_run_loads(runs_dir: Path) -> list:
    """What every page does with a runs folder: none of it may raise after a crash."""
    runs = RunStore(runs_dir).list()
    for info in runs:
        load_run(info.path)
        read_metrics(info.path)
        for split in ("val", "test"):
            load_evaluation(info.path, split)
    return runs


def kill_at_random_moment(proc: subprocess.Popen, runs_dir: Path, seed: int) -> float:
    """SIGKILL ``proc`` at a seeded random moment after its first last.pt exists."""
    deadline = time.monotonic() + 120
    while not list(runs_dir.glob("*/checkpoints/last.pt")):
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    delay = random.Random(seed).uniform(0, KILL_WINDOW_S)
    time.sleep(delay)
    proc.kill()
    proc.wait(30)
    assert proc.returncode == -9, "the run finished before the kill; raise EPOCHS"
    return delay


def check_interrupted(runs_dir: Path) -> Path:
    (info,) = assert_every_run_loads(runs_dir)
    assert info.state == "interrupted" and info.resumable
    done = load_checkpoint(info.path / "checkpoints" / "last.pt")["epoch"]
    assert 1 <= done <= EPOCHS  # EPOCHS: killed during the final evaluation
    # metrics.jsonl is appended after last.pt, so it may be one epoch behind, never ahead
    assert done - 1 <= info.epochs_done <= done
    return info.path


@pytest.mark.slow
def test_kill_9_of_the_cli_then_resume_gives_identical_weights(data, baseline, tmp_path):
    runs = tmp_path / "runs"
    argv = ["train", data, *FAST, "--epochs", EPOCHS, "--runs-dir", runs]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelkit", *map(str, argv)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kill_at_random_moment(proc, runs, seed=6)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = check_interrupted(runs)

    assert main(["train", "--resume", str(run_dir)]) == 0
    assert_same_weights(run_dir, baseline)
    info = load_run(run_dir)
    assert info.state == "finished"
    assert [r["epoch"] for r in read_metrics(run_dir)] == list(range(1, EPOCHS + 1))
    assert load_evaluation(run_dir, "val") is not None


JOB_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from modelkit.config import TrainConfig
    from modelkit.jobs import JobRegistry

    registry = JobRegistry()  # what the app's server holds in st.cache_resource
    job = registry.launch(TrainConfig.from_dict(json.loads(sys.argv[1])))
    while job.thread.is_alive():  # the server's main thread goes on serving pages
        time.sleep(0.05)
    """
)


@pytest.mark.slow
def test_kill_9_of_a_server_process_training_in_a_thread(data, baseline, tmp_path, helpers):
    runs = tmp_path / "runs"
    cfg = helpers.fast_config(data, runs, epochs=EPOCHS)
    proc = subprocess.Popen(
        [sys.executable, "-c", JOB_SCRIPT, json.dumps(cfg.to_dict())],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kill_at_random_moment(proc, runs, seed=11)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = check_interrupted(runs)

    job = JobRegistry().launch(resume_dir=run_dir)  # the Runs page's Resume button
    job.join(120)
    assert job.snapshot().state == "finished", job.snapshot().error
    assert_same_weights(run_dir, baseline)
    assert run_state(run_dir)["state"] == "finished"


class _Killed(BaseException):
    """Stands in for SIGKILL inside the process: nothing after it runs, no handler sees it."""


def test_killed_between_last_pt_and_its_metrics_line(data, tmp_path, helpers):
    """last.pt of epoch 1 is on disk but metrics.jsonl is empty (plus a torn half line): the
    run loads as interrupted, and resume rebuilds the curves from the checkpoint."""
    reference = Trainer(helpers.fast_config(data, tmp_path / "reference")).fit()

    def die_after_first_last_pt(event):
        if isinstance(event, CheckpointSaved) and event.kind == "last" and event.epoch == 0:
            raise _Killed

    trainer = Trainer(helpers.fast_config(data, tmp_path / "runs"), [die_after_first_last_pt])
    with pytest.raises(_Killed):
        trainer.fit()
    run_dir = trainer.run_dir
    with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"epoch": 1, "train_lo')  # the write the kill cut short
    status = read_json(run_dir / "status.json")
    status["pid"] = 2**22 + 12345  # no such process: the training process is gone
    (run_dir / "status.json").write_text(json.dumps(status))

    info = load_run(run_dir)
    assert info.state == "interrupted" and info.resumable
    assert info.epochs_done == 0  # the torn line is skipped, not fatal
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1

    result = Trainer.resume(run_dir).fit()
    assert result.state == "finished"
    expected = load_checkpoint(reference.run_dir / "checkpoints" / "last.pt")["model"]
    got = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(got[k], v) for k, v in expected.items())

    def numbers(d):
        skip = ("epoch_seconds", "images_per_second")
        return [{k: v for k, v in r.items() if k not in skip} for r in read_metrics(d)]

    assert numbers(run_dir) == numbers(reference.run_dir)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]  # torn line gone


def test_metrics_file_with_garbage_half_line_still_lists(trained_run, tmp_path):
    import shutil

    run_dir = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, run_dir)
    with open(run_dir / "metrics.jsonl", "ab") as f:
        f.write(b'{"epoch": 3, "val_acc": 0.\xff\xfe')  # torn, and not even valid UTF-8
    (run_dir / "status.json").write_bytes(b'{"state": "runn')  # torn status too
    rows = read_metrics(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    (info,) = assert_every_run_loads(tmp_path / "runs")
    assert info.epochs_done == 2 and info.state == "interrupted"


@pytest.mark.slow
def test_stop_pressed_while_last_pt_is_being_saved(data, baseline, tmp_path, helpers, monkeypatch):
    """Stop arrives from another thread (a page) mid-save: the save completes, last.pt is whole,
    the run is 'stopped', and resuming reaches the uninterrupted weights."""
    from modelkit.training.callbacks import checkpoint as ckpt

    real_save = ckpt.save_checkpoint
    saving, pressed = threading.Event(), threading.Event()

    def slow_save(path, payload):
        if Path(path).name == "last.pt" and payload["epoch"] == 2 and not saving.is_set():
            saving.set()
            assert pressed.wait(30)  # the page's Stop button is clicked during the write
        real_save(path, payload)

    monkeypatch.setattr(ckpt, "save_checkpoint", slow_save)
    job = JobRegistry().launch(helpers.fast_config(data, tmp_path / "runs", epochs=EPOCHS))
    assert saving.wait(120)
    job.stop()
    pressed.set()
    job.join(60)
    view = job.snapshot()
    assert view.state == "stopped", view.error
    run_dir = Path(view.run_dir)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 2
    assert not list((run_dir / "checkpoints").glob("*.tmp"))
    (info,) = assert_every_run_loads(tmp_path / "runs")
    assert info.state == "stopped" and info.resumable and info.epochs_done == 2

    monkeypatch.undo()
    assert Trainer.resume(run_dir).fit().state == "finished"
    assert_same_weights(run_dir, baseline)
