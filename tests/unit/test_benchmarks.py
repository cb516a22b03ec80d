"""The benchmark scripts still run end to end and write the numbers the README quotes.

Nothing here checks a speed (machines are noisy); these only keep the scripts from rotting: each
runs as a person would run it, on a tiny generated dataset, and its JSON must hold every field.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_script(name: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_train_reports_both_sides_the_ceiling_and_the_accuracy_spread(tmp_path, helpers):
    data = helpers.write_dataset(tmp_path / "data", num_classes=2, per_class=8, size=(40, 40))
    out = tmp_path / "train.json"
    args = ["--image-size", "32", "--batch-size", "4", "--epochs", "2", "--seeds", "2"]
    printed = run_script("bench_train.py", str(data), *args, "--json", str(out), cwd=tmp_path)
    result = json.loads(out.read_text())
    for side in ("naive", "modelkit"):
        assert result[side]["steady_images_per_second"] > 0
        assert 0 <= result[side]["val_acc"] <= 1
        assert result[side]["val_acc_sd"] >= 0
        assert len(result["runs"][side]) == 2  # one per seed
        assert result[side]["peak_rss_mb"] > 0
    assert result["bare_step_images_per_second"] > 0
    assert result["minimal_loop_images_per_second"] > 0
    ratios = result["ratios"]
    assert set(ratios) >= {
        "throughput_x", "bare_step_ceiling_x", "share_of_ceiling", "share_of_minimal_loop"
    }  # fmt: skip
    assert "bare step on random data" in printed and "throughput_x" in printed
    assert "minimal loop, crop + flip" in printed


def test_bench_reruns_reports_a_slowdown_per_mode_and_interval(tmp_path):
    out = tmp_path / "reruns.json"
    args = ["--classes", "2", "--per-class", "8", "--image-size", "32", "--batch-size", "4"]
    args += ["--epochs", "2", "--intervals", "0.2", "--json", str(out)]
    run_script("bench_reruns.py", *args, cwd=tmp_path)
    result = json.loads(out.read_text())
    assert set(result["slowdown"]) == {"figures 200 ms", "apptest 200 ms"}
    assert all(v > 0 for v in result["slowdown"].values())
    assert all(r["redraws"] > 0 for r in result["trials"]["apptest 200 ms"])  # it did rerun


def test_bench_transfer_reports_every_path_against_the_tutorial(tmp_path, helpers):
    """Every transfer path and the tutorial loop run from the bundled ImageNet weights (offline)
    and report accuracy, wall time, images/s and the time to the tutorial's final accuracy."""
    data = helpers.write_dataset(tmp_path / "data", num_classes=2, per_class=8, size=(40, 40))
    out = tmp_path / "transfer.json"
    args = ["--image-size", "32", "--batch-size", "4", "--epochs", "1", "--head-epochs", "1"]
    args += ["--tutorial-epochs", "1", "--json", str(out)]
    printed = run_script("bench_transfer.py", str(data), *args, cwd=tmp_path)
    paths = json.loads(out.read_text())["paths"]
    assert set(paths) == {
        "frozen-cache", "head-then-finetune", "finetune-backbone-lr", "few-images", "tutorial"
    }  # fmt: skip
    for name, r in paths.items():
        assert 0 <= r["val_acc"] <= 1 and r["wall_s"] > 0, name
        assert r["train_images_per_second"] > 0 and r["curve"], name
        assert "time_to_tutorial_final_acc_s" in r and r["wall_time_x"] > 0
    assert paths["frozen-cache"]["settings"]["freeze_backbone"] is True
    assert paths["few-images"]["settings"]["label_smoothing"] == 0.1  # the recipe's own
    assert "frozen-cache" in printed and "to tut. acc" in printed


def test_bench_serve_reports_throughput_and_latency_of_each_way(tmp_path):
    out = tmp_path / "serve.json"
    args = ["--image-size", "32", "--requests", "12", "--clients", "3", "--json", str(out)]
    printed = run_script("bench_serve.py", *args, cwd=tmp_path)
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"predictor", "server, no batching", "server, batching"}
    for name, r in results.items():
        assert r["requests"] == 12 and r["images_per_s"] > 0, name
        assert 0 < r["p50_ms"] <= r["p99_ms"], name
    assert results["server, no batching"]["batch_sizes"] == {"1": 12}
    assert sum(int(k) * v for k, v in results["server, batching"]["batch_sizes"].items()) == 12
    assert "x predictor" in printed


def test_bench_scale_measures_every_step_with_its_peak_memory(tmp_path):
    """A tiny size end to end: every step ran in its child and reported its time and peak RSS,
    and the generated data and runs folder are what the steps counted."""
    out = tmp_path / "scale.json"
    args = ["--sizes", "60", "--classes", "6", "--runs", "20", "--cache-dir", str(tmp_path)]
    printed = run_script("bench_scale.py", *args, "--json", str(out), cwd=tmp_path)
    result = json.loads(out.read_text())
    size = result["sizes"]["60"]
    assert size["dataset"]["images"] == 60 and size["dataset"]["classes"] == 6
    assert size["dataset"]["bytes"] > 60 * 1000  # noisy JPEGs, not blank ones
    steps = size["steps"]
    assert set(steps) == {
        "scan", "check", "cache", "train", "evaluate", "dataset_page", "evaluate_page"
    }  # fmt: skip
    for name, step in {**steps, **result["runs"]["steps"]}.items():
        assert "error" not in step, (name, step)
        assert step["seconds"] >= 0 and step["peak_rss_mb"] >= step["start_rss_mb"] > 0, name
    assert steps["scan"]["images"] == 60 and steps["check"]["problems"] == 0
    assert steps["cache"]["on_disk"] is False and steps["train"]["state"] == "finished"
    assert steps["evaluate"]["images"] == 12  # the 20% validation split
    assert result["runs"]["count"] == 20 and result["runs"]["steps"]["runs_list"]["runs"] == 20
    assert result["runs"]["steps"]["runs_cli"]["lines"] == 21  # a header and one line per run
    assert "dataset_page" in printed and "runs_page" in printed


def test_bench_time_to_accuracy_reports_both_sides_under_one_budget(tmp_path, helpers):
    """The naive loop and the auto recipe under the same budget: accuracy of each, budget vs
    actual wall time, the time auto needs to reach the naive loop's accuracy, peak RSS."""
    data = helpers.write_dataset(tmp_path / "data", num_classes=2, per_class=8, size=(40, 40))
    out = tmp_path / "tta.json"
    args = ["--budget", "10s", "--weights", "none", "--image-size", "32", "--workers", "0"]
    printed = run_script(
        "bench_time_to_accuracy.py", str(data), *args, "--json", str(out), cwd=tmp_path
    )
    result = json.loads(out.read_text())
    for side in ("naive", "auto"):
        assert 0 <= result[side]["val_acc"] <= 1 and result[side]["curve"], side
        assert result[side]["wall_s"] > 0 and result[side]["peak_rss_mb"] > 0, side
    summary = result["summary"]
    assert summary["budget_s"] == 10.0
    assert {"auto_time_to_naive_final_acc_share", "auto_wall_over_budget"} <= set(summary)
    assert any(line.startswith("auto: arch = smallresnet") for line in result["auto"]["why"])
    assert "auto reached the naive loop's final accuracy" in printed


def test_bench_calibration_reports_val_and_a_held_out_half(tmp_path, helpers):
    """A tiny finished run: the T refitted on all of val is the one calibration.json holds, the
    held-out half B has n // 2 images of each class, and every ECE, coverage and accuracy is a
    share. T fitted on half A minimises A's NLL, so A's NLL does not rise; this untrained-ish run
    is overconfident (T goes to its upper bound), so A's ECE drops too."""
    from modelkit.training.loop import Trainer

    data = helpers.write_dataset(tmp_path / "data", num_classes=3, per_class=10, size=(40, 40))
    cfg = helpers.fast_config(data, tmp_path / "runs", epochs=1, val_ratio=0.5)
    run_dir = Trainer(cfg).fit().run_dir
    out = tmp_path / "calibration.json"
    printed = run_script("bench_calibration.py", str(run_dir), "--json", str(out), cwd=tmp_path)
    (r,) = json.loads(out.read_text())["runs"]
    assert {"run", "target", "seed", "val", "held_out"} <= set(r) and r["target"] == 0.95
    val, held = r["val"], r["held_out"]
    labels = [label for _, label in json.loads((run_dir / "splits.json").read_text())["val"]]
    assert val["samples"] == len(labels) and val["temperature_matches"] is True
    assert held["test_samples"] == sum(labels.count(c) // 2 for c in set(labels))
    assert held["fit_samples"] + held["test_samples"] == len(labels)
    for scores in (val, held["fit"], held["test"]):
        assert 0 <= scores["ece_before"] <= 1 and 0 <= scores["ece_after"] <= 1
        assert scores["nll_before"] >= 0 and scores["nll_after"] >= 0
    assert held["fit"]["nll_after"] <= held["fit"]["nll_before"] + 1e-6
    assert held["fit"]["ece_after"] <= held["fit"]["ece_before"]
    for share in (val["coverage"], val["answered_accuracy"], val["accuracy"]):
        assert 0 <= share <= 1
    assert 0 <= held["test_coverage"] <= 1 and 0 <= held["test_answered_accuracy"] <= 1
    assert isinstance(held["target_met"], bool)
    assert "all val" in printed and "calibration.json" in printed
