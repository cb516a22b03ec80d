"""TorchrunJob: training in a torchrun subprocess, watched through the run folder."""

from __future__ import annotations

import pytest

from modelkit.config import TrainConfig
from modelkit.jobs import JobRegistry
from modelkit.jobs.torchrun_job import TorchrunJob, train_argv
from modelkit.runs.store import wait_until


def test_train_argv_reproduces_the_config(make_config):
    from modelkit.cli.main import build_parser

    cfg = make_config(head_hidden=[64, 32], backbone_lr=None, hflip=False)
    args = build_parser().parse_args(train_argv(cfg))
    fields = {k: getattr(args, k) for k in cfg.to_dict() if getattr(args, k, None) is not None}
    assert TrainConfig(**{**fields, "data_dir": args.data}) == cfg


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_torchrun_job_trains_and_shows_the_live_view(make_config):
    registry = JobRegistry()
    job = registry.launch_subprocess(make_config(epochs=2), nproc=1)
    assert isinstance(job, TorchrunJob) and registry.active() is job
    job.join(110)
    view = job.snapshot()
    assert view.state == "finished", (view.error, list(view.log))
    assert view.run_dir and [r["epoch"] for r in view.epoch_metrics] == [1, 2]
    assert view.fraction == 1.0 and not view.active and view.best
    assert any("finished" in line for line in view.log)
    assert registry.active() is None


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_torchrun_job_that_cannot_start_says_why(make_config, tmp_path):
    job = TorchrunJob(make_config(data_dir=str(tmp_path / "missing")), nproc=1).start()
    job.join(110)
    view = job.snapshot()
    assert view.state == "failed" and view.error


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_stopping_a_two_process_job_stops_every_rank_gracefully(make_config):
    job = TorchrunJob(make_config(epochs=50), nproc=2).start()
    assert wait_until(lambda: job.snapshot().epoch_metrics, timeout=120), list(job.snapshot().log)
    job.stop()
    job.join(60)
    view = job.snapshot()
    assert view.state == "stopped", (view.error, list(view.log))
    assert any("stopped by request" in line for line in view.log)
    assert 1 <= len(view.epoch_metrics) < 50
