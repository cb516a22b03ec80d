"""Pseudo-labels on tiny colour images made here (colour-thumbnail features, no model): a few
labelled images a class, an unlabelled rest. What a person checks: validation holds only their
own labels, the pseudo-labels are the sure ones, nothing of theirs moved, the comparison gives
numbers, and a run trains from the list that was written."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import fast_config, write_dataset

from modelkit.data.layouts import DatasetError
from modelkit.data.scan import scan_dataset
from modelkit.labelling.folder import CACHE_NAME
from modelkit.labelling.pseudo import (
    PseudoLabels,
    compare,
    list_path,
    pseudo_labels,
    write_training_list,
)
from modelkit.labelling.session import Labeller
from modelkit.labelling.suggest import SET_ASIDE, UNLABELLED, normalise
from modelkit.paths import confine_to
from modelkit.runs.folder import read_json

COLOURS = ("red", "green", "blue")


def labelling_folder(tmp_path: Path, labelled: int = 10, per_class: int = 30) -> Path:
    """DATA/<colour>/ with ``labelled`` images each, the rest in DATA/unlabelled/."""
    src = write_dataset(tmp_path / "src", num_classes=3, per_class=per_class)
    data = tmp_path / "data"
    (data / "unlabelled").mkdir(parents=True)
    for colour in COLOURS:
        (data / colour).mkdir()
        for i, p in enumerate(sorted((src / colour).glob("*.png"))):
            shutil.copy2(p, (data / colour if i < labelled else data / "unlabelled") / p.name)
    return data


def snapshot(root: Path) -> dict[str, str]:
    """Every file outside modelkit's hidden state folder, by its content."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and CACHE_NAME not in p.parts
    }


def test_val_holds_only_your_labels_and_the_same_images_a_folder_run_holds_out(tmp_path):
    data = labelling_folder(tmp_path)
    before = snapshot(tmp_path)
    result = pseudo_labels(Labeller(data, "pixels"))
    path = write_training_list(result)
    assert snapshot(tmp_path) == before  # nothing moved, nothing written outside the state

    listed = read_json(path)
    assert path == list_path(data) and path.parent == data / CACHE_NAME
    assert set(listed["splits"]) == {"train", "val"}
    assert all(Path(p).parent.name in COLOURS for p, _ in listed["splits"]["val"])
    # the images a run on the class folders alone would hold out for validation
    alone = tmp_path / "alone"
    for colour in COLOURS:
        shutil.copytree(data / colour, alone / colour)
    folder_val = {Path(s.path).name for s in scan_dataset(alone).splits["val"]}
    assert {Path(p).name for p, _ in listed["splits"]["val"]} == folder_val


def test_pseudo_labels_are_the_sure_unlabelled_images_and_the_comparison_gives_numbers(tmp_path):
    data = labelling_folder(tmp_path)
    result = pseudo_labels(Labeller(data, "pixels"))
    assert result.pseudo, result.sentence()
    unlabelled = data / "unlabelled"
    for path, label, confidence in result.pseudo:
        assert Path(path).parent == unlabelled
        assert confidence >= result.threshold
        assert Path(path).name.startswith(result.classes[label])  # the colour it is
    assert sum(result.per_class().values()) == len(result.pseudo)
    assert 0 <= result.val_without <= 1 and 0 <= result.val_with <= 1
    sentence = result.sentence()
    assert f"{result.val_without:.3f}" in sentence and f"{result.val_with:.3f}" in sentence
    if not result.helped:  # colours this plain are learnt from the labels alone
        assert "not used" in sentence and result.used == []
        listed = read_json(write_training_list(result))
        assert len(listed["splits"]["train"]) == len(result.splits["train"])
        assert listed["pseudo"]["pseudo_labels"] == len(result.pseudo)
        assert listed["pseudo"]["threshold"] == round(result.threshold, 4)


def test_no_pseudo_labels_when_the_labels_cannot_show_the_target_or_none_is_left(tmp_path):
    data = labelling_folder(tmp_path, labelled=5)
    result = pseudo_labels(Labeller(data, "pixels"), target=0.999)
    assert result.pseudo == [] and "label more" in result.sentence()
    everything = labelling_folder(tmp_path / "all", labelled=30)
    assert "no image is left" in pseudo_labels(Labeller(everything, "pixels")).sentence()


def test_pseudo_labels_are_used_only_when_they_raised_val_accuracy():
    """Made-up features: a class with few labels, far from the middle, where the pseudo-labels
    move the boundary; and well-separated classes, where they change nothing."""
    a, b = np.eye(8)[0], np.eye(8)[1]

    def case(spread: float):
        rng = np.random.default_rng(0)
        parts = [(a, 30), (b, 6), (a, 200), (b, 200), (a, 20), (b, 20)]  # train, rest, val
        x = normalise(np.concatenate([c + rng.normal(0, spread, (n, 8)) for c, n in parts]))
        labels = np.r_[np.zeros(30), np.ones(6), np.full(400, UNLABELLED), np.full(40, SET_ASIDE)]
        val_y = np.r_[np.zeros(20), np.ones(20)].astype(int)
        return compare(x, labels.astype(int), np.arange(436, 476), val_y, 2)

    hard, easy = case(0.35), case(0.1)
    assert hard.helped and hard.val_with > hard.val_without and len(hard.rows)
    assert not easy.helped and easy.val_with == easy.val_without
    assert all(r >= 36 and r < 436 for r in hard.rows)  # only the unlabelled rows


def test_a_run_trains_from_the_list_with_pseudo_labels_in_train_only(tmp_path):
    from modelkit.training.loop import Trainer

    data = labelling_folder(tmp_path, labelled=4, per_class=8)
    before = snapshot(data)
    person = pseudo_labels(Labeller(data, "pixels")).splits
    classes = sorted(COLOURS)  # the class folders, as the labeller reads them
    sure = [(str(p), classes.index(p.name.split("_")[0]), 0.99)
            for p in sorted((data / "unlabelled").iterdir())[::2]]  # fmt: skip
    helped = PseudoLabels(str(data), classes, person, sure, threshold=0.9, val_without=0.5,
                          val_with=0.75)  # fmt: skip
    path = write_training_list(helped)
    listed = read_json(path)
    assert len(listed["splits"]["train"]) == len(person["train"]) + 6
    assert all("unlabelled" not in p for p, _ in listed["splits"]["val"])
    assert listed["pseudo"]["per_class"] == {"blue": 2, "green": 2, "red": 2}
    assert listed["pseudo"]["used"] == 6 and "raised val accuracy" in listed["pseudo"]["sentence"]

    index = scan_dataset(path)  # what auto looks at before the run
    assert index.layout == "list" and index.classes == classes
    assert len(index.splits["train"]) == len(listed["splits"]["train"])
    result = Trainer(fast_config(path, tmp_path / "runs", epochs=1)).fit()
    assert result.state == "finished"
    run_splits = read_json(result.run_dir / "splits.json")
    assert sorted(p for p, _ in run_splits["val"]) == sorted(p for p, _ in person["val"])
    assert snapshot(data) == before  # the photos stay where they are


def test_a_list_is_untrusted_input(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"classes": ["a"], "splits": {"train": [["x.png", 3]]}}')
    with pytest.raises(DatasetError, match="class index"):
        scan_dataset(bad)
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"")
    inside = tmp_path / "in"
    inside.mkdir()
    listed = inside / "list.json"
    rows = [[str(outside), 0], [str(inside / "b.png"), 1]]
    listed.write_text(json.dumps({"classes": ["a", "b"], "splits": {"train": rows}}))
    with confine_to([inside]):
        index = scan_dataset(listed)
    assert index.outside_roots == [str(outside)] and len(index.splits["train"]) == 1


def label_cli(capsys, *args: str) -> tuple[int, str, str]:
    from modelkit.cli.main import main

    code = main(["label", *args, "--features", "pixels"])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prints_the_comparison_writes_the_list_and_the_train_command(tmp_path, capsys):
    data = labelling_folder(tmp_path)
    before = snapshot(data)
    code, out, _ = label_cli(capsys, str(data), "--pseudo-label")
    assert code == 0
    assert "val accuracy" in out and "labelled by you" in out
    command = f"modelkit train {list_path(data)} --recipe auto"
    assert out.strip().splitlines()[-1] == f"train on it: {command}"
    code, out, _ = label_cli(capsys, str(data), "--pseudo-label", "0.9", "--json")
    report = json.loads(out)["pseudo_label"]
    assert code == 0 and report["command"] == command and report["target"] == 0.9
    assert report["pseudo_labels"] == sum(report["per_class"].values()) > 0
    assert isinstance(report["val_accuracy_without"], float) and report["problems"] == []
    assert read_json(Path(report["list"]))["pseudo"]["sentence"] == report["sentence"]
    assert snapshot(data) == before


def test_the_command_writes_no_list_while_the_labels_cannot_train(tmp_path, capsys):
    data = labelling_folder(tmp_path, labelled=0)
    (data / "red" / "one.png").write_bytes((data / "unlabelled" / "red_00.png").read_bytes())
    code, out, err = label_cli(capsys, str(data), "--pseudo-label")
    assert code == 1 and "two classes" in err and "train on it" not in out
    assert not list_path(data).exists()
    code, _, err = label_cli(capsys, str(data), "--pseudo-label", "2")
    assert code != 0 and "between 0 and 1" in err


@pytest.mark.slow
def test_the_benchmark_s_pseudo_part_writes_its_fields(tmp_path):
    """benchmarks/bench_label.py --parts pseudo still runs end to end on a tiny folder (no
    accuracy is checked: the numbers are in benchmarks/results/)."""
    import subprocess
    import sys

    data = write_dataset(tmp_path / "data", num_classes=2, per_class=16, size=(40, 40))
    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_label.py"
    args = ["--set", f"tiny={data}", "--parts", "pseudo", "--seeds", "2", "--pseudo-budgets",
            "5", "--pseudo-targets", "0.95,0.8", "--cache-dir", str(tmp_path / "cache"),
            "--out-dir", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run([sys.executable, str(bench), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "label_pseudo_cpu2.json").read_text())
    rows = result["sets"]["tiny"]["per_class"]["5"]
    assert set(rows) == {"0.95", "0.8"}
    for row in rows.values():
        assert row["labels"] == 10 and len(row["seeds"]) == 2
        assert 0 <= row["test_without"] <= 1 and 0 <= row["test_chosen"] <= 1
        assert row["used"] <= row["pseudo_labels"]
