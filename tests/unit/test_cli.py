"""``python -m modelkit``: exit codes, one-line errors, machine-readable output, the whole flow."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import modelkit
from modelkit.cli.main import main
from modelkit.runs.store import load_run, read_json, read_metrics

REPO = Path(modelkit.__file__).resolve().parent.parent
FAST = [
    "--weights", "none", "--image-size", "32", "--batch-size", "8",
    "--precision", "fp32", "--device", "cpu", "--seed", "0",
]  # fmt: skip


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    """A writable copy of the shared trained run, in tmp_path/runs."""
    dest = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, dest)
    return dest


@pytest.mark.parametrize("command", [[], ["check"], ["train"], ["evaluate"], ["predict"], ["runs"]])
def test_help_exits_zero(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m modelkit")
    if command == ["train"]:
        assert "--resume" in out and "--early-stopping-patience" in out


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "data", "--epochs", "ten"])
    assert info.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--epochs" in line and "'ten'" in line
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "COMMAND" in one_error_line(capsys.readouterr().err)


def test_check_json(capsys, image_dataset):
    (image_dataset / "red" / "broken.png").write_bytes(b"nope")
    code, out, _ = run_cli(capsys, "check", image_dataset, "--json")
    assert code == 0
    report = json.loads(out)
    assert {"classes", "counts", "unreadable", "duplicates"} <= set(report)
    assert report["classes"] == ["blue", "green", "red"]
    assert sum(report["counts"]["train"].values()) + sum(report["counts"]["val"].values()) == 30
    assert [u["path"] for u in report["unreadable"]] == [str(image_dataset / "red" / "broken.png")]
    assert report["duplicates"] == []
    code, out, _ = run_cli(capsys, "check", image_dataset)
    assert code == 0 and "broken.png" in out


def test_missing_data_folder(capsys, tmp_path):
    for command in (["check"], ["train", *FAST, "--runs-dir", tmp_path / "runs"]):
        code, out, err = run_cli(capsys, *command, tmp_path / "nope")
        assert code == 1 and out == ""
        assert "dataset folder not found" in one_error_line(err)


def test_bad_config_values(capsys, image_dataset, tmp_path):
    runs = tmp_path / "runs"
    code, out, err = run_cli(
        capsys, "train", image_dataset, "--epochs", "0", "--batch-size", "0", "--runs-dir", runs
    )
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "epochs: must be between" in line and "batch_size: must be between" in line
    code, _, err = run_cli(capsys, "train", image_dataset, "--optimizer", "lion")
    assert code == 2 and "optimizer" in one_error_line(err)
    # fp16 needs a GPU; on the CPU this is refused in one line before a run folder exists
    code, _, err = run_cli(
        capsys, "train", image_dataset, *FAST, "--precision", "fp16", "--runs-dir", runs
    )
    assert code == 1 and "fp16 is for GPUs" in one_error_line(err)
    assert not runs.exists()


def test_train_prints_the_run_folder_last(capsys, image_dataset, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    code, out, err = run_cli(
        capsys, "train", image_dataset, *FAST, "--epochs", "1", "--runs-dir", tmp_path / "runs"
    )
    assert code == 0, err
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C handling is put back
    run_dir = Path(out.strip().splitlines()[-1])
    assert run_dir.is_dir() and run_dir.parent == tmp_path / "runs"
    assert out.strip().splitlines() == [str(run_dir)]  # stdout carries only the result
    assert "run finished" in err and "epoch 1/1" in err
    assert read_json(run_dir / "status.json")["state"] == "finished"


def test_evaluate_json_and_text(capsys, run_copy):
    code, out, _ = run_cli(capsys, "evaluate", run_copy, "--json")
    assert code == 0
    ev = json.loads(out)
    assert {"accuracy", "per_class", "confusion_matrix", "macro_f1", "num_samples"} <= set(ev)
    assert ev["num_samples"] == 6 and len(ev["confusion_matrix"]) == 3
    assert [r["class"] for r in ev["per_class"]] == ["blue", "green", "red"]
    code, out, _ = run_cli(capsys, "evaluate", run_copy, "--split", "train")
    assert code == 0
    assert "accuracy" in out and "confusion matrix" in out and "train: 24 images" in out


def test_evaluate_on_a_folder_that_is_not_a_run(capsys, tmp_path):
    code, out, err = run_cli(capsys, "evaluate", tmp_path)
    assert code == 1 and out == ""
    assert "not a run folder" in one_error_line(err)
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "nowhere")
    assert code == 1 and one_error_line(err)


def test_predict_csv_with_a_bad_file(capsys, run_copy, tmp_path):
    splits = read_json(run_copy / "splits.json")
    images = [p for p, _ in splits["val"][:2]]
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    out_csv = tmp_path / "out.csv"
    code, out, err = run_cli(
        capsys, "predict", run_copy, images[0], notes, images[1], "--top-k", "2", "--csv", out_csv
    )
    assert code == 1  # the others are answered, but one named file was not an image (#29)
    assert out.count("\n") == 2 and images[0] in out
    assert str(notes) in one_error_line(err)
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == [images[0], str(notes), images[1]]
    header = ["path", "label_1", "probability_1", "label_2", "probability_2", "unknown", "error"]
    assert list(rows[0]) == header
    assert rows[0]["label_1"] in ("blue", "green", "red") and 0 < float(rows[0]["probability_1"])
    assert rows[1]["error"] and rows[1]["label_1"] == ""
    # only bad files: non-zero
    code, _, _ = run_cli(capsys, "predict", run_copy, notes)
    assert code == 1


def test_predict_with_a_corrupt_checkpoint(capsys, run_copy, tmp_path):
    image = read_json(run_copy / "splits.json")["val"][0][0]
    for name in ("best.pt", "last.pt"):
        (run_copy / "checkpoints" / name).write_bytes(b"\x00garbage")
    code, out, err = run_cli(capsys, "predict", run_copy, image)
    assert code == 1 and out == ""
    assert "damaged" in one_error_line(err)
    plain = tmp_path / "plain.pt"
    plain.write_bytes(b"")
    code, _, err = run_cli(capsys, "predict", plain, image)
    assert code == 1 and "empty" in one_error_line(err)


def test_runs_lists_the_run(capsys, run_copy):
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", run_copy.parent)
    assert code == 0 and run_copy.name in out and "finished" in out
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", run_copy.parent, "--json")
    (entry,) = json.loads(out)
    assert entry["id"] == run_copy.name and entry["state"] == "finished"
    assert entry["epochs_done"] == 2 and entry["config"]["image_size"] == 32
    code, out, _ = run_cli(capsys, "runs", "--runs-dir", run_copy.parent / "none")
    assert code == 0 and "no runs" in out


def test_train_resume(capsys, make_config):
    from modelkit.events import EpochEnd
    from modelkit.training.loop import Trainer

    cfg = make_config(epochs=2)
    trainer = Trainer(cfg)
    trainer.listeners.append(lambda e: isinstance(e, EpochEnd) and trainer.stop())
    stopped = trainer.fit(trainer.stop_event)
    assert stopped.state == "stopped" and len(read_metrics(stopped.run_dir)) == 1

    code, _, err = run_cli(capsys, "train", "--resume", stopped.run_dir, "--epochs", "3")
    assert code == 2 and "--resume" in one_error_line(err)
    code, out, err = run_cli(capsys, "train", "--resume", stopped.run_dir)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str(stopped.run_dir)
    assert [r["epoch"] for r in read_metrics(stopped.run_dir)] == [1, 2]
    code, _, err = run_cli(capsys, "train", "--resume", stopped.run_dir.parent / "nope")
    assert code == 1 and "nothing to resume" in one_error_line(err)


def python_m(*args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "modelkit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
        **kwargs,
    )


@pytest.mark.slow
def test_train_evaluate_predict_in_a_real_process(image_dataset, tmp_path):
    runs = tmp_path / "runs"
    train = python_m("train", image_dataset, *FAST, "--epochs", "1", "--runs-dir", runs)
    assert train.returncode == 0, train.stderr
    run_dir = Path(train.stdout.strip().splitlines()[-1])
    assert run_dir.parent == runs and (run_dir / "checkpoints" / "best.pt").is_file()

    evaluate = python_m("evaluate", run_dir, "--json")
    assert evaluate.returncode == 0, evaluate.stderr
    assert {"accuracy", "per_class", "confusion_matrix"} <= set(json.loads(evaluate.stdout))

    image = image_dataset / "red" / "red_00.png"
    out_csv = tmp_path / "pred.csv"
    predict = python_m("predict", run_dir, image, "--csv", out_csv)
    assert predict.returncode == 0, predict.stderr
    assert predict.stdout.startswith(f"{image}: ")
    assert out_csv.read_text().splitlines()[1].startswith(str(image))

    bad = python_m("evaluate", tmp_path)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_leaves_it_resumable(image_dataset, tmp_path):
    runs = tmp_path / "runs"
    args = ["train", image_dataset, *FAST, "--epochs", "50", "--runs-dir", runs]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelkit", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        deadline = time.monotonic() + 90
        while not list(runs.glob("*/metrics.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(runs.glob("*/metrics.jsonl")), "no epoch finished in time"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    run_dir = Path(out.strip().splitlines()[-1])
    assert "stopping after this batch" in err
    assert read_json(run_dir / "status.json")["state"] == "stopped"
    assert load_run(run_dir).resumable


def test_every_setting_is_a_flag_of_train_tune_and_lr_find(capsys):
    from modelkit.config import schema

    for command in ("train", "tune", "lr-find"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        for s in schema():
            if s.widget != "dataset":
                assert "--" + s.name.replace("_", "-") in out, (command, s.name)
    assert "{sgd,adam,adamw}" in out and "between 1 and 8192" in out  # choices, ranges


def test_refused_settings_exit_2_in_every_command_that_takes_them(capsys, image_dataset):
    for command in ("train", "tune", "lr-find"):
        code, out, err = run_cli(capsys, command, image_dataset, "--epochs", "0", "--hue", "0.9")
        assert code == 2 and out == "", command
        line = one_error_line(err)
        assert "epochs: must be between 1 and 10000" in line and "hue: must be in" in line
    code, _, err = run_cli(capsys, "train", image_dataset, "--recipe", "nope")
    assert code == 2 and "recipe" in one_error_line(err)
