"""Telling a folder of data sets from a data set (modelkit.data.dataset_folders)."""

from __future__ import annotations

from pathlib import Path

from helpers import png_bytes

from modelkit.data.dataset_folders import dataset_hint, datasets_inside


def image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes((10, 20, 30), 8))


def classes(root: Path, names: str, per_class: int = 2) -> Path:
    for name in names.split():
        for i in range(per_class):
            image(root / name / f"{i}.png")
    return root


def test_a_folder_of_three_data_sets_lists_each_with_its_hint(tmp_path):
    classes(tmp_path / "flowers", "daisy rose tulip")
    classes(tmp_path / "pets", "cats dogs")
    for split in ("train", "val"):
        classes(tmp_path / "scenes" / split, "sea street")
    (tmp_path / "notes").mkdir()  # an empty folder beside them changes nothing
    found = datasets_inside(tmp_path)
    assert [(d.path.name, d.hint) for d in found] == [
        ("flowers", "3 class folders"),
        ("pets", "2 class folders"),
        ("scenes", "train/val splits"),
    ]
    assert found[0].path == tmp_path / "flowers"


def test_a_data_set_is_not_a_folder_of_data_sets(tmp_path):
    classes(tmp_path / "pets", "cats dogs birds")
    assert datasets_inside(tmp_path / "pets") == []
    assert dataset_hint(tmp_path / "pets") == "3 class folders"
    for split in ("train", "test"):
        classes(tmp_path / "split" / split, "a b")
    assert datasets_inside(tmp_path / "split") == []
    assert dataset_hint(tmp_path / "split") == "train/val splits"


def test_class_folders_beside_a_stray_data_set_stay_a_data_set(tmp_path):
    classes(tmp_path, "a b c d")
    classes(tmp_path / "e", "x y")  # one class folder happens to hold sub-folders
    assert datasets_inside(tmp_path) == []


def test_images_loose_in_the_folder_make_it_no_folder_of_data_sets(tmp_path):
    classes(tmp_path / "one", "a b")
    classes(tmp_path / "two", "a b")
    for i in range(3):
        image(tmp_path / f"loose{i}.png")
    assert datasets_inside(tmp_path) == []


def test_unreadable_or_missing_folder_answers_nothing(tmp_path):
    assert datasets_inside(tmp_path / "missing") == []
    assert dataset_hint(tmp_path / "missing") is None


def test_only_the_named_children_are_looked_at(tmp_path):
    for name in ("flowers", "pets", "birds"):
        classes(tmp_path / name, "a b")
    assert [d.path.name for d in datasets_inside(tmp_path, ["birds", "pets"])] == ["birds", "pets"]
    assert datasets_inside(tmp_path, ["pets"]) == []  # one data set is no folder of them
