"""Split-folder layouts as public datasets ship them: train/ + test/ without val (val drawn from
train per class), and val/valid/validation/eval or Train/TEST in any case; each index says which
folder was used for what."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from modelkit.cli.main import main
from modelkit.data.browse import looks_like_dataset
from modelkit.data.scan import DatasetError, scan_dataset


def write(root: Path, sizes: dict[str, int]) -> Path:
    for cls, n in sizes.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (12, 12), (i * 20 % 255, 90, 30)).save(root / cls / f"{cls}{i}.png")
    return root


def test_train_and_test_draw_a_stratified_val_from_train_and_keep_test(tmp_path):
    write(tmp_path / "train", {"ants": 10, "bees": 5})
    write(tmp_path / "test", {"ants": 3, "bees": 2})
    index = scan_dataset(tmp_path, val_ratio=0.2, seed=3)
    counts = index.counts()
    assert counts["val"] == {"ants": 2, "bees": 1}
    assert counts["train"] == {"ants": 8, "bees": 4}
    assert counts["test"] == {"ants": 3, "bees": 2}  # test/ untouched, every file in it
    assert all("/test/" in s.path for s in index.splits["test"])
    assert all("/train/" in s.path for s in index.splits["val"])
    train = {s.path for s in index.splits["train"]}
    assert not train & {s.path for s in index.splits["val"]}
    assert index.val_from_train == 0.2
    assert "train/ for train and val" in index.layout_note()
    assert "20%" in index.layout_note() and "test/ for test" in index.layout_note()
    again = scan_dataset(tmp_path, val_ratio=0.2, seed=3)
    assert again.splits == index.splits  # the same split every time


def test_val_is_drawn_as_a_class_folder_dataset_would_draw_it(tmp_path):
    """The same seed picks the same val images from train/ as from a plain class folder."""
    write(tmp_path / "split" / "train", {"ants": 9, "bees": 7})
    write(tmp_path / "split" / "test", {"ants": 1, "bees": 1})
    plain = write(tmp_path / "plain", {"ants": 9, "bees": 7})
    a = scan_dataset(tmp_path / "split", val_ratio=0.3, seed=1)
    b = scan_dataset(plain, val_ratio=0.3, seed=1)
    assert [Path(s.path).name for s in a.splits["val"]] == [
        Path(s.path).name for s in b.splits["val"]
    ]


@pytest.mark.parametrize(
    ("train", "val", "test"),
    [("Train", "VALID", "Test"), ("train", "validation", None), ("TRAIN", "eval", "TEST")],
)
def test_split_folder_names_in_any_case(tmp_path, train, val, test):
    write(tmp_path / train, {"a": 2, "b": 2})
    write(tmp_path / val, {"a": 1, "b": 1})
    if test:
        write(tmp_path / test, {"a": 1, "b": 1})
    index = scan_dataset(tmp_path)
    assert index.layout == "splits" and index.val_from_train is None
    assert index.split_folders["train"] == train and index.split_folders["val"] == val
    assert f"{val}/ for val" in index.layout_note()
    assert set(index.splits) == {"train", "val"} | ({"test"} if test else set())
    assert looks_like_dataset(tmp_path) == "train/val splits"


def test_a_lone_train_folder_is_split_too(tmp_path):
    write(tmp_path / "train", {"a": 5, "b": 5})
    index = scan_dataset(tmp_path, val_ratio=0.2)
    assert index.counts()["val"] == {"a": 1, "b": 1}


def test_two_folders_for_one_split_are_refused_by_name(tmp_path):
    for name in ("train", "eval", "Val"):
        write(tmp_path / name, {"a": 1})
    with pytest.raises(DatasetError, match=r"several candidate val folders \(Val, eval\)"):
        scan_dataset(tmp_path)


def test_check_says_which_folder_is_used_for_what(tmp_path, capsys):
    write(tmp_path / "train", {"ants": 5, "bees": 5})
    write(tmp_path / "test", {"ants": 2, "bees": 2})
    assert main(["check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train/ for train and val" in out and "test/ for test" in out
    assert main(["check", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "train/ for train and val" in report["layout_note"]
    assert report["counts"]["val"] == {"ants": 1, "bees": 1}


def test_training_on_train_and_test_folders_logs_where_val_came_from(tmp_path, capsys, helpers):
    write(tmp_path / "data" / "train", {"ants": 6, "bees": 6})
    write(tmp_path / "data" / "test", {"ants": 2, "bees": 2})
    args = [
        "train",
        str(tmp_path / "data"),
        "--runs-dir",
        str(tmp_path / "runs"),
        *helpers.fast_train_flags,
        "--val-ratio",
        "0.34",
    ]
    assert main(args) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    log = (run_dir / "log.txt").read_text()
    assert "train/ for train and val (a stratified 34% of each class" in log
    splits = json.loads((run_dir / "splits.json").read_text())
    assert {len(splits["val"]), len(splits["test"]), len(splits["train"])} == {4, 8}
    assert all("/train/" in path for path, _ in splits["val"])
    assert all("/test/" in path for path, _ in splits["test"])
