"""auto measures the bundled backbones on the training images instead of guessing by rule."""

from __future__ import annotations

import numpy as np
import pytest

from modelkit.recipes import resolve
from modelkit.recipes.auto import choose
from modelkit.recipes.facts import Facts
from modelkit.recipes.probe import (
    Candidate,
    ProbeReport,
    _winner,
    heldout_accuracy,
    installed_backbones,
    probe_backbones,
    probe_sample,
)


def test_the_sample_takes_every_class_and_is_the_same_for_the_same_seed():
    labels = np.array([0] * 50 + [1] * 8 + [2] * 1 + [3] * 30)
    picked = probe_sample(labels, seed=3, images=60)
    assert np.array_equal(picked, probe_sample(labels, seed=3, images=60))
    counts = np.bincount(labels[picked], minlength=4)
    assert counts[2] == 0  # one image: nothing to hold out
    assert counts[1] == 8 and counts[0] == counts[3] == 26  # all of a small class, the rest shared
    assert not np.array_equal(picked, probe_sample(labels, seed=4, images=60))


def test_held_out_accuracy_tells_separable_features_from_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 20)
    centres = rng.normal(0, 5, (4, 16))
    separable = centres[labels] + rng.normal(0, 0.5, (80, 16))
    acc, folds = heldout_accuracy(separable.astype(np.float32), labels, seed=0)
    assert acc == 1.0 and folds == 4
    noise, _ = heldout_accuracy(rng.normal(0, 1, (80, 16)).astype(np.float32), labels, seed=0)
    assert noise < 0.5  # held out: a head cannot memorise its way to the answer


def test_a_faster_backbone_within_a_point_wins_and_a_clear_leader_wins_outright():
    close = [
        Candidate("efficientnet_lite0", 224, 0.905, 10),
        Candidate("efficientnet_lite1", 240, 0.91, 20),
    ]
    arch, why = _winner(close)
    assert arch == "efficientnet_lite0" and "faster" in why
    clear = [
        Candidate("efficientnet_lite0", 224, 0.80, 10),
        Candidate("efficientnet_lite1", 240, 0.90, 20),
    ]
    arch, why = _winner(clear)
    assert arch == "efficientnet_lite1" and "+0.100" in why
    assert _winner([Candidate("efficientnet_lite0", 224, skipped="over budget")])[0] == ""


def facts_with(winner: str, budget: float = 300.0) -> Facts:
    probe = ProbeReport([Candidate(winner, 224, 0.9, 5.0)], 200, 4, winner, "measured best", 5.0)
    per_class = {f"c{i}": 20 for i in range(10)}
    return Facts(200, 10, per_class, 300, "efficientnet_lite0", False, budget, probe)


def test_the_measured_winner_is_the_backbone_and_the_reason_says_it_was_measured():
    lite1 = choose(facts_with("efficientnet_lite1"))
    assert lite1.settings["arch"] == "efficientnet_lite1" and lite1.settings["image_size"] == 240
    assert any(
        "measured on 200 training images" in why for name, _, why in lite1.reasons if name == "arch"
    )
    # Lite1 has cached stage maps to fine-tune on: the budget leaves room for them
    assert lite1.settings.get("cache_frozen_stages") is True
    lite0 = choose(facts_with("efficientnet_lite0", budget=30.0))
    assert lite0.settings["arch"] == "efficientnet_lite0"  # no rule swaps it for Lite1


@pytest.mark.skipif(len(installed_backbones()) < 2, reason="needs two bundled backbones")
def test_probing_real_backbones_on_tiny_photos_fills_the_table(make_dataset):
    data = make_dataset(per_class=8, size=(72, 72))
    from modelkit.data.scan import scan_dataset

    train = scan_dataset(data, 0.2, 0.0, 0).splits["train"]
    report = probe_backbones([s.path for s in train], [s.label for s in train], seed=0)
    assert [c.arch for c in report.candidates][:2] == ["efficientnet_lite0", "efficientnet_lite1"]
    assert all(0 <= (c.heldout_accuracy or 0) <= 1 for c in report.candidates)
    assert report.winner in {c.arch for c in report.candidates} and report.images == len(train)
    assert report.table()[0].split() == ["backbone", "size", "held-out", "acc", "seconds"]
    # a budget with no room for a second backbone: it is skipped and the table says so
    tight = probe_backbones([s.path for s in train], [s.label for s in train], time_budget=0.5)
    assert [c.skipped for c in tight.candidates][1:] == ["over budget"] * (
        len(tight.candidates) - 1
    )


@pytest.mark.skipif(len(installed_backbones()) < 2, reason="needs two bundled backbones")
def test_resolving_auto_for_a_run_measures_and_spends_budget_on_it(make_dataset):
    data = make_dataset(per_class=8, size=(72, 72))
    out = resolve(
        "auto", {"time_budget": 600}, dataset=str(data), probe_network=False, measure=True
    )
    probe = out.auto.facts.probe
    assert probe is not None and out.settings["arch"] == probe.winner
    assert out.settings["time_budget"] == pytest.approx(600 - probe.seconds)
    assert any("measured backbones" in n for n in out.notes)
    preview = resolve("auto", {"time_budget": 600}, dataset=str(data), probe_network=False)
    assert preview.auto.facts.probe is None and preview.settings["time_budget"] == 600


@pytest.mark.slow
@pytest.mark.skipif(len(installed_backbones()) < 2, reason="needs two bundled backbones")
def test_a_run_keeps_what_auto_measured_beside_its_config(make_dataset, tmp_path, capsys):
    import json

    from modelkit.cli.main import main

    data = make_dataset(per_class=8, size=(72, 72))
    runs = tmp_path / "runs"
    argv = ["train", str(data), "--recipe", "auto", "--time-budget", "300", "--device", "cpu"]
    code = main([*argv, "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 0, err
    # the winner's run keeps what auto measured (a longer run of it may follow: recipes.longer)
    run = next(r for r in runs.iterdir() if (r / "auto_search.json").is_file())
    search = json.loads((run / "auto_search.json").read_text())
    assert search["winner"] == json.loads((run / "config.json").read_text())["arch"]
    assert [c["arch"] for c in search["candidates"]][0] == "efficientnet_lite0"
    log = (run / "log.txt").read_text(encoding="utf-8")
    assert "measured backbones" in log and "held-out acc" in log
    assert err.count("measured backbones") == 1


def measured(winner: str, seconds: float, images: int, budget: float, per_class: int = 20) -> Facts:
    """Facts where the probe took ``seconds`` to embed ``images`` sampled images."""
    won = Candidate(winner, 224, 0.9, seconds, "", seconds / images)
    probe = ProbeReport([won], images, 4, winner, "best", seconds)
    counts = {f"c{i}": per_class for i in range(10)}
    return Facts(10 * per_class, 10, counts, 300, "efficientnet_lite0", False, budget, probe)


def test_a_slow_machine_measured_by_the_probe_plans_the_cheaper_path():
    # Lite1 near its nominal rate: 200 images embed in ~3 s, and the stage maps fit 60 s
    quiet = choose(measured("efficientnet_lite1", 3.0, 200, 60.0))
    assert quiet.settings.get("cache_frozen_stages") is True
    # the same images took 30 s to embed (a busy machine): the maps no longer fit, and the
    # three cached passes of the head would eat the budget, so one is made
    busy = choose(measured("efficientnet_lite1", 30.0, 200, 60.0))
    assert "cache_frozen_stages" not in busy.settings
    assert busy.settings["feature_passes"] == 1
    why = dict((name, why) for name, _, why in busy.reasons)["feature_passes"]
    assert "measured here" in why and "~30 s" in why


def test_a_budget_too_short_to_look_at_the_images_once_is_refused_with_the_least_that_works():
    from modelkit.recipes.facts import AutoRecipeError

    with pytest.raises(AutoRecipeError, match=r"too short here.*~80 s.*give at least \d+ s"):
        choose(measured("efficientnet_lite0", 80.0, 200, 100.0))


def test_without_a_budget_auto_gives_itself_one_and_says_so(make_dataset):
    from modelkit.recipes.facts import default_budget

    assert default_budget(245, gpu=False) == 120.0  # two minutes at least
    assert default_budget(7315, gpu=False) == 420.0  # whole minutes
    assert default_budget(10**6, gpu=False) == 3600.0 and default_budget(7315, gpu=True) == 120.0
    data = make_dataset(per_class=8, size=(40, 40))
    run = dict(dataset=str(data), probe_network=False, measure=True)  # as a run starts
    out = resolve("auto", {"weights": "none"}, **run)
    assert out.settings["time_budget"] == 120.0 and out.sources["time_budget"] == "auto"
    assert any("time_budget = 120" in n and "none was given" in n for n in out.notes)
    asked = resolve("auto", {"weights": "none", "epochs": 3}, **run)
    assert "time_budget" not in asked.settings  # epochs asked for: no budget imposed
    # the page's preview, whose form may still get epochs typed in, chooses none
    preview = resolve("auto", {"weights": "none"}, dataset=str(data), probe_network=False)
    assert "time_budget" not in preview.settings


@pytest.mark.slow
@pytest.mark.skipif(len(installed_backbones()) < 2, reason="needs two bundled backbones")
def test_the_probe_benchmark_checks_the_winner_against_validation(make_dataset, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    data = make_dataset(per_class=8, size=(72, 72))
    out = tmp_path / "probe.json"
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_probe.py"
    done = subprocess.run(
        [sys.executable, str(script), str(data), "--budget", "600", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())["sets"]
    assert row["winner"] in row["val_accuracy"]
    assert all(0 <= acc <= 1 for acc in row["val_accuracy"].values())
    assert isinstance(row["winner_within_a_point_on_val"], bool)


def test_the_probe_sample_does_not_change_with_the_seconds_the_command_took_to_start():
    from modelkit.recipes.probe import MAX_IMAGES, MIN_IMAGES, SAMPLE_STEP, sample_size

    backbones = installed_backbones()
    # a 2-minute budget less 3 s or 5 s of the command's start: one sample, one choice
    sizes = {sample_size(backbones, budget, gpu=False) for budget in (117.0, 116.0, 115.0)}
    assert len(sizes) == 1
    size = sizes.pop()
    assert size % SAMPLE_STEP == 0 or size in (MIN_IMAGES, MAX_IMAGES)
