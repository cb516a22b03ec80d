"""JobRegistry: one background training job, its live view, stopping and resuming."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from modelkit.events import EpochEnd
from modelkit.jobs import JobBusyError, JobRegistry, LiveView, TrainingJob
from modelkit.runs.store import read_json, wait_until
from modelkit.training.loop import Trainer, TrainingError


def test_launch_runs_in_the_background_and_fills_the_live_view(make_config):
    registry = JobRegistry()
    assert registry.current is None and registry.active() is None
    job = registry.launch(make_config(epochs=1))
    assert job.thread.daemon and registry.current is job
    job.join(timeout=120)
    assert not job.thread.is_alive()
    view = job.snapshot()
    assert view.state == "finished" and not view.active and view.error == ""
    assert [step for step, _ in view.batch_losses] == [1, 2, 3]
    assert all(loss > 0 for _, loss in view.batch_losses)
    assert [row["epoch"] for row in view.epoch_metrics] == [1]
    assert {"train_loss", "val_loss", "val_acc"} <= set(view.epoch_metrics[0])
    assert view.best["epoch"] == view.last["epoch"] == 1
    assert view.run_dir and job.name == Path(view.run_dir).name
    assert view.device == "cpu" and view.precision == "fp32"
    assert view.num_train == 24 and view.num_val == 6
    assert view.cache_done == view.cache_total == 30
    assert view.fraction == 1.0 and view.ended is not None
    assert any("finished" in line for line in view.log)
    assert registry.active() is None and registry.current is job  # kept to show how it ended


def test_second_launch_is_refused_and_stop_ends_within_a_batch(make_config):
    registry = JobRegistry()
    job = registry.launch(make_config(epochs=50))
    assert wait_until(lambda: len(job.snapshot().batch_losses) >= 2, timeout=120)
    with pytest.raises(JobBusyError) as info:
        registry.launch(make_config(epochs=1))
    assert job.name == Path(job.snapshot().run_dir).name and job.name in str(info.value)
    assert registry.current is job

    registry.stop()
    seen_at_stop = len(job.snapshot().batch_losses)
    job.join(timeout=60)
    assert not job.thread.is_alive()
    view = job.snapshot()
    assert view.state == "stopped" and not view.active
    assert len(view.batch_losses) <= seen_at_stop + 1  # at most the batch in flight
    assert read_json(Path(view.run_dir) / "status.json")["state"] == "stopped"
    # the slot is free again
    assert registry.active() is None


def test_resume_through_the_registry(make_config):
    cfg = make_config(epochs=2)
    trainer = Trainer(cfg)
    trainer.listeners.append(lambda e: isinstance(e, EpochEnd) and trainer.stop())
    stopped = trainer.fit(trainer.stop_event)
    assert stopped.state == "stopped"

    registry = JobRegistry()
    job = registry.launch(resume_dir=stopped.run_dir)
    job.join(timeout=120)
    view = job.snapshot()
    assert view.state == "finished", view.error
    assert view.start_epoch == 1 and view.epochs == 2
    assert [row["epoch"] for row in view.epoch_metrics] == [2]
    assert [step for step, _ in view.batch_losses] == [4, 5, 6]
    assert view.fraction == 1.0
    assert view.run_dir == str(stopped.run_dir)


def test_resume_without_a_checkpoint_fails_at_launch(tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        JobRegistry().launch(resume_dir=tmp_path)


def test_a_job_that_cannot_start_reports_failed(make_config, tmp_path):
    registry = JobRegistry()
    job = registry.launch(make_config(data_dir=str(tmp_path / "missing")))
    job.join(timeout=60)
    view = job.snapshot()
    assert view.state == "failed" and "dataset folder not found" in view.error
    assert view.log[-1].startswith("error: ")


def test_snapshot_is_a_copy():
    view = LiveView(state="running", epochs=4, batches=10, epoch=1, batch=5)
    view.batch_losses.append((1, 0.5))
    job = TrainingJob.__new__(TrainingJob)  # only the view and its lock are needed here
    job.lock = threading.Lock()
    job.view = view
    snap = job.snapshot()
    snap.batch_losses.append((2, 0.4))
    snap.log.append("x")
    assert view.batch_losses == [(1, 0.5)] and list(view.log) == []
    assert snap.fraction == pytest.approx(15 / 40)


def test_live_view_progress_and_eta():
    view = LiveView(state="running", epochs=3, batches=4, epoch=1, batch=2, start_epoch=1)
    assert view.fraction == pytest.approx(2 / 8) and view.active
    view.started = time.time() - 10
    assert view.eta_seconds == pytest.approx(30, rel=0.1)
    assert LiveView().fraction == 0.0 and LiveView().eta_seconds is None
    assert LiveView(state="finished", epochs=1, batches=1, batch=1).eta_seconds is None
