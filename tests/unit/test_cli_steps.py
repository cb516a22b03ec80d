"""``modelkit train`` names each long step of the run on stderr (what a log of the command
shows), so a person reading it knows what the minutes before and after the epochs were spent on."""

from __future__ import annotations

import time

from modelkit.cli.main import main

FAST = [
    "--weights", "none", "--image-size", "32", "--batch-size", "8", "--epochs", "2",
    "--precision", "fp32", "--device", "cpu", "--seed", "0",
]  # fmt: skip


def test_train_names_its_long_steps(capsys, image_dataset, tmp_path):
    code = main(
        [
            "train", str(image_dataset), *FAST, "--runs-dir", str(tmp_path / "runs"),
            "--freeze-backbone", "true", "--feature-passes", "2", "--test-ratio", "0.2",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    lines = err.splitlines()
    steps = [line.split(":")[0] for line in lines if " images in " in line or " parts in " in line]
    assert steps == [
        "Decoding images",
        "Computing features for the head (pass 1 of 2)",
        "Computing features for the head (pass 2 of 2)",
        "Evaluating on the validation split",
        "Evaluating on the test split",
        "Calibrating",
    ]
    # the second pass is said between the first epoch and the second, not as a restart
    first, second = (lines.index(x) for x in lines if x.startswith("epoch "))
    pass_two = next(i for i, x in enumerate(lines) if "(pass 2 of 2)" in x)
    assert first < pass_two < second


def test_a_budget_counts_from_the_command_s_start(capsys, image_dataset, tmp_path, monkeypatch):
    """``--time-budget 2m`` is the command's wall clock: the seconds Python took to start and
    import before the run are spent from it, and the run says so."""
    import json

    from modelkit.cli import common

    monkeypatch.setattr(common, "seconds_since_start", lambda: 7.0)
    runs = tmp_path / "runs"
    argv = ["train", str(image_dataset), *FAST, "--runs-dir", str(runs), "--time-budget", "120"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "the command's start took 7 s of the time budget" in err
    run = next(runs.iterdir())
    assert json.loads((run / "config.json").read_text())["time_budget"] == 113.0


def test_the_command_s_clock_is_the_process_s_only_when_the_process_is_the_command():
    from modelkit.cli import common

    time.sleep(0.05)
    common.mark_command_start(in_process=False)  # `modelkit train ...`: Python's start counts
    assert common.seconds_since_start() >= 0.05
    common.mark_command_start(in_process=True)  # main([...]) in a test: not this process's age
    assert common.seconds_since_start() < 0.05
