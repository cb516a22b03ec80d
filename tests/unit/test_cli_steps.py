"""``modelkit train`` names each long step of the run on stderr (what a log of the command
shows), so a person reading it knows what the minutes before and after the epochs were spent on."""

from __future__ import annotations

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
