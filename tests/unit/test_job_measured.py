"""The app's auto runs as the command line's does: measured in the job's thread before the run,
and, where its race asks for it and time is left, a second model and the ensemble the person
gets, the live view following each run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import fast_config, write_dataset

from modelkit.jobs.thread_job import TrainingJob
from modelkit.recipes import resolve
from modelkit.recipes.measured import changed_in_form


def race(helps: bool) -> dict:
    """auto_search.json's race: the winner changed the architecture; averaged with auto's own
    choice it did (or did not) do better on the held-out training images."""
    return {
        "base_settings": {"arch": "resnet18"},
        "paths": [
            {"name": "small net", "changes": {"arch": "smallresnet"}},
            {"name": "auto's choice", "changes": {}},
        ],
        "ensemble": {"paths": ["small net", "auto's choice"], "heldout": 0.9, "helps": helps},
    }


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data", num_classes=3, per_class=8)


def measured_job(data, tmp_path, helps: bool) -> TrainingJob:
    shown = fast_config(data, tmp_path / "runs")  # what the form showed
    # a budget no run of these uses up: a quarter of it is left on the slowest machine
    measured = fast_config(data, tmp_path / "runs", arch="smallresnet", time_budget=3600.0)
    search = {"winner": "efficientnet_lite0", "race": race(helps)}
    job = TrainingJob(shown, measure=lambda: (measured, ["auto: raced 2 paths"], search))
    job.start().join(900)  # a safety net for a stuck thread, not a timing
    return job


def test_a_race_that_asks_for_two_models_ends_on_the_ensemble_run(data, tmp_path):
    job = measured_job(data, tmp_path, helps=True)
    view = job.snapshot()
    assert view.state == "finished" and not view.error
    run = Path(view.run_dir)
    config = json.loads((run / "config.json").read_text())
    assert config["arch"] == "ensemble" and len(config["ensemble_of"]) == 2
    winner = run.parent / config["ensemble_of"][0]
    assert json.loads((winner / "auto_search.json").read_text())["race"]["ensemble"]["helps"]
    assert "auto: raced 2 paths" in (winner / "log.txt").read_text()
    assert any("measuring" in line for line in view.log)
    assert any(line == f"the model is the ensemble run {run.name}" for line in view.log)
    status = json.loads((run / "status.json").read_text())
    assert view.best["val_acc"] == status["best"]["val_acc"]  # the ensemble's, as it reports
    # the curves shown are the second run's own, not both runs' epochs run together
    assert [row["epoch"] for row in view.epoch_metrics] == [1, 2]


def test_a_race_that_does_not_keeps_the_winner(data, tmp_path):
    job = measured_job(data, tmp_path, helps=False)
    view = job.snapshot()
    assert view.state == "finished"
    config = json.loads((Path(view.run_dir) / "config.json").read_text())
    assert config["arch"] == "smallresnet"  # the winner, or the winner trained longer
    runs = [json.loads((r / "config.json").read_text()) for r in (tmp_path / "runs").iterdir()]
    assert all(r["arch"] == "smallresnet" for r in runs)  # no runner-up, no ensemble


def test_what_the_person_changed_in_the_form_stays_theirs(data, tmp_path):
    shown = resolve("none", {"time_budget": 90.0}, start={"epochs": 3, "lr": 0.01})
    form = fast_config(data, tmp_path / "runs", epochs=3, lr=0.05, time_budget=90.0)
    given = changed_in_form(form, shown)
    assert given["lr"] == 0.05 and "epochs" not in given  # as shown: auto may choose again
    assert given["time_budget"] == 90.0  # the budget box's, though the form shows it as is
    assert given["data_dir"] == str(data)
