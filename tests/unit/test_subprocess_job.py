"""TorchrunJob: training in a torchrun subprocess, watched through the run folder."""

from __future__ import annotations

import pytest

from modelkit.atomic import atomic_write_json
from modelkit.config import TrainConfig
from modelkit.jobs import JobRegistry
from modelkit.jobs.torchrun_job import TorchrunJob, torchrun_command, worker_main, worker_source
from modelkit.runs.store import RunStore, wait_until


def test_the_workers_start_from_the_config_file(make_config, tmp_path):
    """No argv round trip: the workers read the TrainConfig JSON (or resume the run folder)."""
    cfg = make_config(head_hidden=[64, 32], backbone_lr=None, hflip=False, monitor="val_acc")
    source = worker_source(tmp_path, cfg, None)
    assert source == tmp_path / "config.json" and TrainConfig.load(source) == cfg
    assert worker_source(tmp_path, None, tmp_path / "run") == tmp_path / "run"
    command = torchrun_command(2, source)
    assert command[-3:] == ["-m", "modelkit.jobs.torchrun_job", str(source)]
    assert not any(arg.startswith("--monitor") for arg in command)


def test_a_worker_trains_the_config_file_and_resumes_the_run(make_config, tmp_path, capsys):
    """worker_main as torchrun runs it (here one process, in-process): a config file trains a
    new run; a run folder resumes it (here with one more epoch); a bad file is one error line."""
    cfg = make_config(epochs=1)
    assert worker_main(str(worker_source(tmp_path, cfg, None))) == 0
    (run,) = RunStore(cfg.runs_dir).list()
    assert run.state == "finished" and run.epochs_done == 1
    atomic_write_json(run.path / "config.json", cfg.replace(epochs=2).to_dict())
    assert worker_main(str(run.path)) == 0
    assert RunStore(cfg.runs_dir).get(run.path).epochs_done == 2
    (tmp_path / "bad.json").write_text('{"epochs": "many"}')
    assert worker_main(str(tmp_path / "bad.json")) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: ")


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
