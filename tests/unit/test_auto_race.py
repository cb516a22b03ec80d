"""auto races the paths open to it on training images held out from the rest, by successive
halving, and keeps the winner; the validation split stays untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import FAST_SETTINGS, fast_config, write_dataset

from modelkit.data.scan import scan_dataset
from modelkit.recipes import race as race_module
from modelkit.recipes import resolve
from modelkit.recipes.facts import Facts
from modelkit.recipes.probe import Candidate, ProbeReport
from modelkit.recipes.race import run_race
from modelkit.recipes.race_heldout import KeepBestHeldOut
from modelkit.recipes.race_paths import NOT_FROM_SCRATCH, RacePath

# a path the tests can afford: a small network from random weights at 32 px
SMALL = {**FAST_SETTINGS, **NOT_FROM_SCRATCH, "arch": "smallresnet", "batch_size": 16}


def small_paths() -> list[RacePath]:
    return [
        RacePath("learns", {**SMALL, "lr": 0.1}, "a rate that learns"),
        RacePath("cannot learn", {**SMALL, "lr": 1e-9}, "a rate too small to move a weight"),
        RacePath("learns too", {**SMALL, "lr": 0.02}, "another rate that learns"),
    ]


@pytest.fixture
def data(tmp_path):
    return write_dataset(tmp_path / "data", num_classes=3, per_class=30)


@pytest.fixture(autouse=True)
def short_rounds(monkeypatch):
    monkeypatch.setattr(race_module, "FIRST_EPOCHS", 2)  # 2 epochs, then 4: seconds, not minutes
    monkeypatch.setattr(race_module, "MAX_IMAGES", 45)  # of the 72 training images


def train_of(data) -> tuple[list[tuple[str, int]], list[str], list[str]]:
    index = scan_dataset(str(data), 0.2, 0.0, 0)
    train = [(s.path, s.label) for s in index.splits["train"]]
    return train, index.classes, [s.path for s in index.splits["val"]]


def measured_facts(images: int, budget: float) -> Facts:
    probe = ProbeReport(
        [Candidate("efficientnet_lite0", 224, 0.9, 5.0, "", 0.002)], images, 4,
        "efficientnet_lite0", "measured best", 5.0,
    )  # fmt: skip
    per_class = {c: images // 3 for c in ("red", "green", "blue")}
    left = budget - probe.seconds  # what gather_facts leaves after the probe
    # photos (300 px): auto's own choice is Lite0 fine-tuned, which the small paths replace
    return Facts(images, 3, per_class, 300, "efficientnet_lite0", False, left, probe)


def test_a_path_that_cannot_learn_is_dropped_in_the_first_round(data):
    train, classes, _ = train_of(data)
    facts = Facts(len(train), 3, {}, 48, "", False, 600.0)
    report = run_race(facts, dict(SMALL), train, classes, 600.0, seed=0, paths=small_paths())
    by_name = {p.name: p for p in report.paths}
    assert len(by_name["cannot learn"].scores) == 1  # out after round 1
    assert by_name["cannot learn"].scores[0] < min(by_name["learns"].scores[0], 0.9)
    assert report.winner in {"learns", "learns too"}
    assert len(report.winning.scores) == 2  # the better half went on, with twice the epochs
    assert report.winning.epochs == [2, 4]
    assert "best held-out accuracy in round 2" in report.why
    # the two finalists' held-out probabilities, averaged, are judged against the winner
    finalists = [p.name for p in report.paths if len(p.scores) == 2]
    assert report.ensemble["paths"][0] == report.winner
    assert sorted(report.ensemble["paths"]) == sorted(finalists)
    assert 0.0 <= report.ensemble["heldout"] <= 1.0
    assert any(line.startswith("averaging the last round's") for line in report.table())


def held_out(probs, labels):
    kept = KeepBestHeldOut()
    kept.probs, kept.labels = np.asarray(probs, float), np.asarray(labels)
    return kept


def test_the_finalists_are_averaged_only_where_that_wins_held_out_images():
    labels = [0, 0, 1, 1]
    # each run is unsure on the image the other gets right: their average gets all four
    sure_a = held_out([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.2, 0.8]], labels)
    sure_b = held_out([[0.45, 0.55], [0.9, 0.1], [0.2, 0.8], [0.2, 0.8]], labels)
    won, other = RacePath("a", {}, "", scores=[0.75]), RacePath("b", {}, "", scores=[0.75])
    report = race_module.RaceReport([won, other], images=12, heldout=4)
    race_module._judge_ensemble(report, won, {"a": sure_a, "b": sure_b})
    assert report.ensemble == {"paths": ["a", "b"], "heldout": 1.0, "helps": True}
    # two runs that make the same mistake: averaging gains nothing, two models are not worth it
    report.ensemble = {}
    race_module._judge_ensemble(report, won, {"a": sure_a, "b": held_out(sure_a.probs, labels)})
    assert report.ensemble["helps"] is False and report.ensemble["heldout"] == 0.75


def test_the_same_seed_races_to_the_same_winner(data):
    train, classes, _ = train_of(data)
    facts = Facts(len(train), 3, {}, 48, "", False, 600.0)

    def race():
        paths = small_paths()[:2]
        report = run_race(facts, dict(SMALL), train, classes, 600.0, seed=3, paths=paths)
        return report.winner, [p.scores for p in report.paths], report.heldout_files

    assert race() == race()


def test_auto_races_on_held_out_training_images_and_says_so(data, tmp_path, monkeypatch):
    train, _, val = train_of(data)
    monkeypatch.setattr(
        "modelkit.recipes.auto.gather_facts", lambda *a, **k: measured_facts(len(train), 600.0)
    )
    monkeypatch.setattr(race_module, "candidate_paths", lambda *a: small_paths()[:2])
    out = resolve("auto", {"time_budget": 600}, dataset=str(data), measure=True, race=True)
    race = out.auto.facts.race
    # the person's validation images are neither trained on nor judged on
    assert not set(val) & (set(race.train_files) | set(race.heldout_files))
    assert set(race.train_files) | set(race.heldout_files) <= {p for p, _ in train}
    assert not set(race.train_files) & set(race.heldout_files)
    assert race.winner == "learns" and out.settings["lr"] == 0.1
    assert any("won auto's race" in n and n.startswith("auto: lr = 0.1") for n in out.notes)
    assert any(n.startswith("auto: raced 2 paths by successive halving") for n in out.notes)
    assert any("cannot learn" in n and "lr=1e-09" in n for n in out.notes)  # the table
    # the race's seconds come off the budget, after the probe's
    assert out.settings["time_budget"] == pytest.approx(600 - 5.0 - race.seconds)
    # and the run keeps the table beside its config
    from modelkit.recipes.notes import notes_callback
    from modelkit.training.loop import Trainer

    search = out.auto.facts.probe.to_dict()
    config = fast_config(data, tmp_path / "runs", epochs=1)
    result = Trainer(config, callbacks=[notes_callback(out.notes, search)]).fit()
    kept = json.loads((result.run_dir / "auto_search.json").read_text())["race"]
    assert kept["winner"] == "learns" and any("cannot learn" in line for line in kept["table"])
    assert [len(p["scores"]) for p in kept["paths"]] == [1, 1]


def test_a_budget_below_the_race_s_minimum_keeps_auto_s_choice_and_says_why(data, monkeypatch):
    train, _, _ = train_of(data)
    monkeypatch.setattr(
        "modelkit.recipes.auto.gather_facts", lambda *a, **k: measured_facts(len(train), 10.0)
    )
    monkeypatch.setattr(race_module, "candidate_paths", lambda *a: small_paths()[:2])
    out = resolve("auto", {"time_budget": 10}, dataset=str(data), measure=True, race=True)
    plain = resolve("auto", {"time_budget": 10}, dataset=str(data), measure=True, race=False)
    assert out.settings == plain.settings  # today's auto, untouched
    assert out.auto.facts.race.skipped and not out.auto.facts.race.winner
    note = next(n for n in out.notes if n.startswith("auto: no race"))
    assert "a race needs ~" in note and "auto's choice stands" in note
    assert not any("raced" in n for n in plain.notes)


def test_a_tie_goes_to_the_path_ahead_in_the_round_before_not_the_cheaper():
    # cifar10_small's 5-minute race: the head alone and the maps tied in round 2, the maps were
    # ahead in round 1; the cheaper head won by cost and lost on test (race_ties_cpu2.json)
    head = RacePath("head only", {}, "", scores=[0.653, 0.667])
    maps = RacePath("last stage on maps", {}, "", scores=[0.680, 0.667])
    order = [head, maps]  # cheapest first
    assert sorted(order, key=lambda p: race_module.standing(p, order)) == [maps, head]
    assert race_module.tie_broken(maps, head) == (
        ", a tie, which it won by round 1 (0.680 against 0.653)"
    )
    # tied in every round: the cheaper path
    twin = RacePath("twin", {}, "", scores=[0.653, 0.667])
    pair = [head, twin]
    assert sorted(pair, key=lambda p: race_module.standing(p, pair))[0] is head
    assert (
        race_module.tie_broken(head, twin) == ", a tie in every round, which the cheaper path wins"
    )
    # a failed round (no score) ranks below any score
    failed = RacePath("failed", {}, "", scores=[None, 0.667])
    trio = [failed, head]
    assert sorted(trio, key=lambda p: race_module.standing(p, trio))[0] is head


def test_a_race_on_many_classes_samples_enough_of_each_to_judge():
    import numpy as np

    from modelkit.recipes.race import HELDOUT_SHARE, MAX_IMAGES, PER_CLASS, race_sample

    labels = np.repeat(np.arange(100), 30)  # 100 classes of 30: 600 would leave 4 a class to train
    train, held = race_sample(labels, seed=0)
    assert len(train) + len(held) == PER_CLASS * 100 > MAX_IMAGES
    per_class = np.bincount(labels[train], minlength=100)
    assert per_class.min() >= round(PER_CLASS * (1 - HELDOUT_SHARE)) - 1
    assert not set(train) & set(held)
