"""auto's second model: where its race found the finalists averaged better than the winner and
time is left, the runner-up trains on the same data and the two become the run a person gets."""

from __future__ import annotations

import json

import pytest
from helpers import fast_config, write_dataset

from modelkit.recipes.second_model import second_config, spend_what_is_left
from modelkit.runs.folder import RunFolder
from modelkit.serving.predictor import Predictor
from modelkit.training.loop import Trainer


def race(helps: bool = True) -> dict:
    """What auto_search.json's race holds: the winner changed the arch, the runner-up the rate."""
    return {
        "winner": "small net",
        "base_settings": {"arch": "resnet18", "lr": 0.01},
        "paths": [
            {"name": "small net", "changes": {"arch": "smallresnet"}},
            {"name": "auto's choice", "changes": {}},
            {"name": "fast rate", "changes": {"lr": 0.05}},
        ],
        "ensemble": {"paths": ["small net", "auto's choice"], "heldout": 0.9, "helps": helps},
    }


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data", num_classes=3, per_class=8)


def test_the_runner_up_is_auto_s_choice_before_the_race_changed_it(data, tmp_path):
    winner = fast_config(data, tmp_path / "runs", arch="smallresnet", time_budget=100.0)
    second, why = second_config(winner, race(), left_s=60.0)
    assert why == ""
    assert second.arch == "resnet18"  # the winner's change undone: auto's own path
    assert second.lr == 0.01 and second.time_budget == 60.0
    assert second.data_dir == winner.data_dir and second.seed == winner.seed  # same splits


def test_no_second_model_without_the_race_s_word_or_the_time(data, tmp_path):
    winner = fast_config(data, tmp_path / "runs", arch="smallresnet", time_budget=100.0)
    assert second_config(winner, race(helps=False), 60.0) == (None, "")
    assert second_config(winner, None, 60.0) == (None, "")
    second, why = second_config(winner, race(), left_s=10.0)
    assert second is None and "10 s of 100 s are left" in why


def test_the_time_left_makes_an_ensemble_run_of_the_two(data, tmp_path):
    config = fast_config(data, tmp_path / "runs", arch="smallresnet", time_budget=300.0)
    first = Trainer(config).fit().run_dir
    # as if the winner's budget had cut it (its first epoch's metrics kept): no longer run, so
    # the time left goes to the runner-up whatever the longer run would have taken here
    metrics = RunFolder(first).metrics
    metrics.write_text(metrics.read_text().splitlines()[0] + "\n")
    said: list[str] = []
    run = spend_what_is_left(first, config, race(), 100.0, say=said.append)
    assert run != first and run.parent == first.parent
    saved = json.loads((run / "config.json").read_text())
    assert saved["arch"] == "ensemble" and saved["ensemble_of"][0] == first.name
    second = next(p for p in first.parent.iterdir() if p.name == saved["ensemble_of"][1])
    assert json.loads((second / "config.json").read_text())["arch"] == "resnet18"
    assert any("runner-up" in line for line in said) and "ensemble of" in said[-2]
    # both members ended well inside their budgets: the run a person gets says why
    note = json.loads((run / "status.json").read_text())["budget_note"]
    assert note == said[-1] and note.startswith("members ended before their budgets; ")
    assert f"{second.name}: ended at " in note
    image = next((data / "red").iterdir())
    assert Predictor(run / "checkpoints" / "best.pt").predict(str(image)).labels[0] in {
        "red",
        "green",
        "blue",
    }


def test_without_time_left_the_winner_is_the_run_and_the_log_says_why(data, tmp_path):
    config = fast_config(data, tmp_path / "runs", arch="smallresnet", time_budget=300.0)
    first = Trainer(config).fit().run_dir
    said: list[str] = []
    assert spend_what_is_left(first, config, race(), 295.0, say=said.append) == first
    assert said[0].startswith("not trained longer: ")  # recipes.longer, the same time left
    assert said[-1] == (
        "no second model: the race found two averaged better, but 5 s of 300 s are left"
    )
    assert [p.name for p in first.parent.iterdir()] == [first.name]
    # the run ended well inside its budget: its note says so and why it was not trained longer
    note = json.loads((first / "status.json").read_text())["budget_note"]
    assert note.startswith("ended at ") and note.endswith(f"; {said[0]}")
