"""auto's winner trained longer: where its run did every epoch asked, well inside its budget, it
trains again with twice the epochs and the person gets whichever validates better; when the
longer run does not, the winner had converged and its status says so."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import fast_config, write_dataset

from modelkit.recipes.longer import did_every_epoch, longer_config
from modelkit.recipes.second_model import spend_what_is_left
from modelkit.runs.folder import RunFolder
from modelkit.training import kept_maps
from modelkit.training.kept_maps import keeping_stage_maps
from modelkit.training.loop import Trainer


def write_curve(run_dir, val_accs: list[float], epoch_s: float | None = None) -> None:
    """The run's metrics.jsonl with these validation accuracies, one row an epoch (taking
    ``epoch_s`` seconds where given), and its status's best as the highest of them: a curve the
    test chooses, where a real one on tiny images would be whatever the seed gave."""
    rows = [{"epoch": i + 1, "train_loss": 1.0, "val_acc": a} for i, a in enumerate(val_accs)]
    if epoch_s is not None:
        rows = [{**row, "epoch_seconds": epoch_s} for row in rows]
    RunFolder(run_dir).metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    status_file = RunFolder(run_dir).status
    status = json.loads(status_file.read_text())
    status["best"] = {"val_acc": max(val_accs)}
    status_file.write_text(json.dumps(status))


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data", num_classes=3, per_class=8)


@pytest.fixture
def first(data, tmp_path):
    config = fast_config(data, tmp_path / "runs", epochs=4, time_budget=300.0)
    return config, Trainer(config).fit().run_dir


def test_a_run_that_did_every_epoch_asks_for_four_times_them_where_they_fit(first):
    config, run = first
    write_curve(run, [0.4, 0.5, 0.6, 0.6])
    assert did_every_epoch(run, asked=4)
    longer, why = longer_config(config, run, run_s=10.0, left_s=290.0)
    assert why == "" and longer.epochs == 16
    assert longer.data_dir == config.data_dir and longer.seed == config.seed  # same splits
    assert longer.time_budget == 290.0


def test_the_head_epochs_stay_and_the_rest_grows(data, tmp_path, first):
    _, run = first
    config = fast_config(data, tmp_path / "runs", epochs=4, head_epochs=1, time_budget=300.0)
    write_curve(run, [0.4, 0.5, 0.6, 0.6])
    assert longer_config(config, run, run_s=10.0, left_s=290.0)[0].epochs == 1 + 4 * 3


def test_a_run_cut_short_was_not_short_of_epochs(first):
    config, run = first
    write_curve(run, [0.4, 0.5, 0.6])  # 3 of the 4 asked: the budget or a stop ended it
    assert not did_every_epoch(run, asked=4)
    assert longer_config(config, run, run_s=10.0, left_s=290.0) == (None, "")


def test_without_the_time_for_half_as_many_again_the_log_says_so(first):
    config, run = first
    write_curve(run, [0.4, 0.5, 0.6, 0.7])  # no epoch times: 100 s over 4 epochs, 25 s each
    assert longer_config(config, run, run_s=100.0, left_s=50.0) == (
        None,
        "not trained longer: 6 epochs would need ~160 s, 2 more from its weights ~60 s, "
        "and 50 s are left",
    )


def test_where_the_run_again_does_not_fit_the_winner_is_continued_from_its_weights(first):
    config, run = first
    # 100 s, of which the 4 epochs took 80: the run again and 2 more epochs need ~148 s, but
    # continuing needs only the 20 s outside the epochs and 24 s an added epoch: 3 fit 100 s
    write_curve(run, [0.4, 0.5, 0.6, 0.7], epoch_s=20.0)
    continued, why = longer_config(config, run, run_s=100.0, left_s=100.0)
    assert why == "" and continued.epochs == 3 and continued.weights == str(run)
    assert continued.head_epochs == 0 and continued.lr == pytest.approx(config.lr / 3)
    assert not continued.progressive_resize  # its weights are past the small sizes
    assert continued.data_dir == config.data_dir and continued.seed == config.seed


def test_the_winners_kept_stage_maps_are_not_charged_again(first):
    config, run = first
    # 100 s: 4 epochs of 10 s and 60 s computing the stage maps, which the next run reuses
    write_curve(run, [0.4, 0.5, 0.6, 0.7], epoch_s=10.0)
    assert longer_config(config, run, run_s=100.0, left_s=50.0)[1].startswith("not trained")
    with keeping_stage_maps():
        kept_maps.keep("winner", kept_maps.KeptMaps({}, 1, [], torch.Generator(), seconds=60.0))
        continued, why = longer_config(config, run, run_s=100.0, left_s=50.0)
    assert why == "" and continued.weights == str(run) and continued.epochs == 4  # 12 s each


def test_a_two_phase_winner_continues_at_its_fine_tuning_rates(data, tmp_path, first):
    _, run = first
    config = fast_config(
        data, tmp_path / "runs", epochs=4, head_epochs=1, time_budget=300.0,
        finetune_lr=0.003, backbone_lr=0.0006,
    )  # fmt: skip
    write_curve(run, [0.4, 0.5, 0.6, 0.7], epoch_s=20.0)
    continued, _ = longer_config(config, run, run_s=100.0, left_s=100.0)
    assert continued.epochs == 3 and continued.head_epochs == 0  # the head is trained already
    assert continued.lr == pytest.approx(0.001) and continued.backbone_lr == pytest.approx(0.0002)


def test_the_continued_run_is_the_run_when_it_validates_better(data, tmp_path):
    config = fast_config(data, tmp_path / "runs", epochs=4, time_budget=400.0)
    run = Trainer(config).fit().run_dir
    write_curve(run, [0.0, 0.0, 0.0, 0.01], epoch_s=45.0)  # rising; the run took 200 s
    said: list[str] = []
    got = spend_what_is_left(run, config, None, spent_s=200.0, say=said.append)
    assert said[0].startswith("continuing the winner from its weights for 3 more epochs")
    assert said[1].startswith("the continued run validates better")
    assert got != run and got.parent == run.parent


def test_it_trains_as_many_more_epochs_as_fit_the_time_left(first):
    config, run = first
    write_curve(run, [0.4, 0.5, 0.6, 0.7])
    # the run again (100 s) and 1.2 x 25 s an added epoch: 8 epochs need 220 s, 7 need 190 s
    longer, why = longer_config(config, run, run_s=100.0, left_s=200.0)
    assert why == "" and longer.epochs == 7 and longer.time_budget == 200.0


def test_an_epoch_costs_what_the_epochs_took_not_the_run_over_its_epochs(first):
    config, run = first
    # 100 s of which the epochs took 4 x 2 s (decoding and cached maps took the rest): twice the
    # epochs need the run again and 4 more epochs, ~110 s, not the 240 s the run's mean says
    write_curve(run, [0.4, 0.5, 0.6, 0.7], epoch_s=2.0)
    longer, why = longer_config(config, run, run_s=100.0, left_s=112.0)
    assert why == "" and longer.epochs == 9


def test_the_longer_run_is_the_run_when_it_validates_better(first):
    config, run = first
    write_curve(run, [0.0, 0.0, 0.0, 0.01])  # rising, and any real run validates better
    said: list[str] = []
    got = spend_what_is_left(run, config, None, spent_s=10.0, say=said.append)
    assert got != run and got.parent == run.parent
    assert json.loads(RunFolder(got).config.read_text())["epochs"] in (16, 64)  # longer again?
    assert said[0].startswith("training the winner again with 16 epochs (it did all 4 in 10 s")
    assert said[1].startswith("the longer run validates better")


def test_a_longer_run_that_validates_no_better_leaves_the_winner(first):
    config, run = first
    write_curve(run, [0.0, 0.0, 0.0, 1.0])  # nothing validates better than every image right
    said: list[str] = []
    assert spend_what_is_left(run, config, None, spent_s=10.0, say=said.append) == run
    assert said[-1].startswith("converged: 16 epochs did not validate better than 4 (")
    status = json.loads(RunFolder(run).status.read_text())
    assert status["budget_note"] == said[-1]  # what the runs list and the suite read
    assert len(list(run.parent.iterdir())) == 2  # the longer run is kept, not deleted


def test_a_stop_during_the_longer_run_trains_nothing_after_it(first):
    import threading

    config, run = first
    write_curve(run, [0.0, 0.0, 0.0, 0.01])
    race = {  # a race that asks for its runner-up: only a stop keeps it from training
        "base_settings": {},
        "paths": [{"name": "a", "changes": {}}, {"name": "b", "changes": {"lr": 0.05}}],
        "ensemble": {"paths": ["a", "b"], "heldout": 0.9, "helps": True},
    }
    stop = threading.Event()
    stop.set()  # Stop pressed as the longer run starts
    said: list[str] = []
    assert spend_what_is_left(run, config, race, 10.0, stop, say=said.append) == run
    assert not any("runner-up" in line for line in said)


def test_after_the_most_longer_runs_the_run_says_why_it_stopped_there(first, monkeypatch):
    from modelkit.recipes import longer as longer_module
    from modelkit.recipes import second_model
    from modelkit.runs.metrics_log import read_metrics

    config, run = first
    write_curve(run, [0.4, 0.5, 0.6, 0.6])
    # every run validates better the more epochs it trained, and none counts as cut short by
    # its budget on a busy machine: two longer runs, each kept
    monkeypatch.setattr(second_model, "recorded_val_acc", lambda r: len(read_metrics(r)) / 1e3)
    monkeypatch.setattr(longer_module, "did_every_epoch", lambda *_: True)
    said: list[str] = []
    got = spend_what_is_left(run, config, None, spent_s=10.0, say=said.append)
    assert said[-1] == "not trained longer: 2 longer runs, each better, are the most auto tries"
    status = json.loads(RunFolder(got).status.read_text())
    assert status["budget_note"].endswith(f"; {said[-1]}")  # beside why it ended early
