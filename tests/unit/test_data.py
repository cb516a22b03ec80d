"""scan_dataset: both layouts, deterministic stratified splits, and clear errors."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from modelkit.data.scan import DatasetError, DatasetIndex, Sample, scan_dataset

TINY = Image.new("RGB", (4, 4), (10, 20, 30))


def make_images(folder: Path, n: int, prefix: str = "img", ext: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{prefix}{i:03d}{ext}"
        # Names only matter to the scan; write real tiny PNG bytes anyway.
        TINY.save(p, "PNG")
        paths.append(p)
    return paths


def folders_dataset(root: Path, sizes: dict[str, int]) -> Path:
    for cls, n in sizes.items():
        make_images(root / cls, n)
    return root


def per_class(index: DatasetIndex, split: str) -> dict[str, int]:
    return index.counts()[split]


# --- layout "folders" ------------------------------------------------------------------------


def test_folders_layout_basic(tmp_path):
    root = folders_dataset(tmp_path / "ds", {"cats": 10, "dogs": 5})
    index = scan_dataset(root)
    assert index.layout == "folders"
    assert index.root == str(root.resolve())
    assert index.classes == ["cats", "dogs"]
    assert set(index.splits) == {"train", "val"}
    assert index.counts() == {"train": {"cats": 8, "dogs": 4}, "val": {"cats": 2, "dogs": 1}}
    for _split, sample in index.all_samples():
        assert isinstance(sample, Sample) and os.path.isabs(sample.path)
        assert Path(sample.path).parent.name == index.classes[sample.label]
    paths = [s.path for _, s in index.all_samples()]
    assert len(paths) == len(set(paths)) == 15


def test_stratified_proportions_with_test_split(tmp_path):
    root = folders_dataset(tmp_path, {"a": 100, "b": 40, "c": 10})
    index = scan_dataset(root, val_ratio=0.2, test_ratio=0.1)
    assert set(index.splits) == {"train", "val", "test"}
    assert index.counts() == {
        "train": {"a": 70, "b": 28, "c": 7},
        "val": {"a": 20, "b": 8, "c": 2},
        "test": {"a": 10, "b": 4, "c": 1},
    }


def test_split_deterministic_for_seed_and_differs_across_seeds(tmp_path):
    root = folders_dataset(tmp_path, {"a": 30, "b": 30})
    val = {seed: [s.path for s in scan_dataset(root, seed=seed).splits["val"]] for seed in (0, 1)}
    assert val[0] == [s.path for s in scan_dataset(root, seed=0).splits["val"]]
    assert val[0] != val[1]
    assert Counter(Path(p).parent.name for p in val[1]) == {"a": 6, "b": 6}


def test_split_does_not_depend_on_where_the_folder_lives(tmp_path):
    a = folders_dataset(tmp_path / "one", {"x": 20})
    b = folders_dataset(tmp_path / "two" / "deeper", {"x": 20})
    names = [[Path(s.path).name for s in scan_dataset(r).splits["val"]] for r in (a, b)]
    assert names[0] == names[1]


def test_small_classes_get_one_val_image_and_are_flagged(tmp_path):
    root = folders_dataset(tmp_path, {"big": 20, "two": 2, "one": 1})
    index = scan_dataset(root, val_ratio=0.1)
    assert per_class(index, "val") == {"big": 2, "one": 0, "two": 1}
    assert per_class(index, "train") == {"big": 18, "one": 1, "two": 1}
    assert index.too_small == ["one"]

    index = scan_dataset(root, val_ratio=0.1, test_ratio=0.1)
    assert per_class(index, "test") == {"big": 2, "one": 0, "two": 0}
    assert index.too_small == ["one", "two"]


def test_zero_val_ratio(tmp_path):
    root = folders_dataset(tmp_path, {"a": 5})
    index = scan_dataset(root, val_ratio=0)
    assert index.counts() == {"train": {"a": 5}, "val": {"a": 0}}
    assert index.too_small == []


@pytest.mark.parametrize(("val", "test"), [(1.0, 0.0), (-0.1, 0.0), (0.6, 0.4)])
def test_bad_ratios(tmp_path, val, test):
    root = folders_dataset(tmp_path, {"a": 5})
    with pytest.raises(DatasetError, match="ratio"):
        scan_dataset(root, val_ratio=val, test_ratio=test)


def test_nested_folders_belong_to_class_and_extensions_any_case(tmp_path):
    make_images(tmp_path / "cats" / "2019" / "summer", 2, ext=".JPG")
    make_images(tmp_path / "cats", 1, ext=".Png")
    make_images(tmp_path / "dogs", 1, ext=".webp")
    make_images(tmp_path / "dogs" / "sub", 1, ext=".TIFF")
    index = scan_dataset(tmp_path, val_ratio=0)
    assert per_class(index, "train") == {"cats": 3, "dogs": 2}
    assert index.ignored == []


def test_ignored_files(tmp_path):
    make_images(tmp_path / "cats", 2)
    for name in (".DS_Store", "Thumbs.db", "desktop.ini", ".hidden.png", "notes.txt", "x.psd"):
        (tmp_path / "cats" / name).write_bytes(b"x")
    make_images(tmp_path / "cats" / ".thumbnails", 3)
    make_images(tmp_path / ".git", 1)  # hidden folder in root is not a class
    (tmp_path / "loose.jpg").write_bytes(b"x")  # images must sit in a class folder
    (tmp_path / "Thumbs.db").write_bytes(b"x")
    index = scan_dataset(tmp_path)
    assert index.classes == ["cats"]
    assert sum(per_class(index, s)["cats"] for s in index.splits) == 2
    names = {Path(p).name for p in index.ignored}
    assert {".DS_Store", "Thumbs.db", "desktop.ini", ".hidden.png", "notes.txt", "x.psd"} <= names
    assert {".thumbnails", ".git", "loose.jpg"} <= names
    assert all(os.path.isabs(p) for p in index.ignored)


def test_empty_class_reported(tmp_path):
    make_images(tmp_path / "full", 3)
    (tmp_path / "empty").mkdir()
    (tmp_path / "onlytext").mkdir()
    (tmp_path / "onlytext" / "readme.txt").write_text("hi")
    index = scan_dataset(tmp_path)
    assert index.classes == ["empty", "full", "onlytext"]
    assert index.empty_classes == ["empty", "onlytext"]
    assert index.counts()["train"]["empty"] == 0


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlink_loop_does_not_hang_and_linked_files_count(tmp_path):
    make_images(tmp_path / "cats", 2)
    os.symlink(tmp_path / "cats", tmp_path / "cats" / "loop")  # cats/loop -> cats
    os.symlink(tmp_path, tmp_path / "cats" / "up")  # cats/up -> root
    make_images(tmp_path / "elsewhere", 1, prefix="ext")
    os.symlink(tmp_path / "elsewhere" / "ext000.png", tmp_path / "cats" / "linked.png")
    os.symlink(tmp_path / "missing.png", tmp_path / "cats" / "broken.png")
    index = scan_dataset(tmp_path, val_ratio=0)
    assert index.classes == ["cats", "elsewhere"]
    names = sorted(Path(s.path).name for s in index.splits["train"] if s.label == 0)
    assert names == ["img000.png", "img001.png", "linked.png"]
    ignored = {Path(p).name for p in index.ignored}
    assert {"broken.png", "up"} <= ignored


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlinked_subfolders_followed_but_not_into_other_classes(tmp_path):
    make_images(tmp_path / "ds" / "cats", 1)
    make_images(tmp_path / "ds" / "dogs", 2)
    make_images(tmp_path / "outside", 3, prefix="out")
    os.symlink(tmp_path / "outside", tmp_path / "ds" / "cats" / "more")
    os.symlink(tmp_path / "ds" / "dogs", tmp_path / "ds" / "cats" / "dogs_too")
    index = scan_dataset(tmp_path / "ds", val_ratio=0)
    assert index.counts()["train"] == {"cats": 4, "dogs": 2}
    assert any(p.endswith("dogs_too") for p in index.ignored)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlinked_class_folder(tmp_path):
    make_images(tmp_path / "store" / "cats", 3)
    (tmp_path / "ds").mkdir()
    os.symlink(tmp_path / "store" / "cats", tmp_path / "ds" / "cats")
    index = scan_dataset(tmp_path / "ds", val_ratio=0)
    assert index.counts() == {"train": {"cats": 3}, "val": {"cats": 0}}


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root ignores permissions")
def test_unreadable_folder_does_not_crash(tmp_path):
    make_images(tmp_path / "cats", 2)
    locked = tmp_path / "cats" / "locked"
    make_images(locked, 1)
    locked.chmod(0)
    try:
        index = scan_dataset(tmp_path, val_ratio=0)
    finally:
        locked.chmod(0o755)
    assert index.counts()["train"]["cats"] == 2
    assert any("locked" in d for d in index.unreadable_dirs)


def test_unreadable_folder_with_fake_permission_error(tmp_path, monkeypatch):
    """Same as above but also when running as root, where chmod does not lock anything."""
    make_images(tmp_path / "cats", 2)
    make_images(tmp_path / "cats" / "locked", 1)
    real = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    index = scan_dataset(tmp_path, val_ratio=0)
    assert index.counts()["train"]["cats"] == 2
    assert any("locked" in d and "Permission denied" in d for d in index.unreadable_dirs)


@pytest.mark.skipif(sys.platform != "linux", reason="bytes file names are a Linux thing")
def test_non_utf8_file_names(tmp_path):
    make_images(tmp_path / "cats", 1)
    raw = os.path.join(os.fsencode(tmp_path / "cats"), b"caf\xe9.png")  # latin-1 e-acute
    with open(raw, "wb") as f:
        TINY.save(f, "PNG")
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"d\xfcrer"))
    with open(os.path.join(os.fsencode(tmp_path), b"d\xfcrer", b"x.png"), "wb") as f:
        TINY.save(f, "PNG")
    index = scan_dataset(tmp_path, val_ratio=0)
    assert len(index.classes) == 2
    assert sum(index.counts()["train"].values()) == 3
    for _, s in index.all_samples():
        assert os.path.isfile(s.path)


# --- layout "splits" -------------------------------------------------------------------------


@pytest.mark.parametrize("val_name", ["val", "valid", "validation", "Validation", "VAL"])
def test_splits_layout(tmp_path, val_name):
    folders_dataset(tmp_path / "Train", {"ants": 4, "bees": 3})
    folders_dataset(tmp_path / val_name, {"ants": 2, "bees": 1})
    index = scan_dataset(tmp_path, val_ratio=0.9, test_ratio=0.5)  # ratios ignored
    assert index.layout == "splits"
    assert index.classes == ["ants", "bees"]
    assert index.counts() == {"train": {"ants": 4, "bees": 3}, "val": {"ants": 2, "bees": 1}}
    for _split, sample in index.all_samples():
        assert f"{os.sep}{index.classes[sample.label]}{os.sep}" in sample.path


def test_splits_layout_with_test_and_empty_class(tmp_path):
    folders_dataset(tmp_path / "train", {"ants": 4, "bees": 3})
    folders_dataset(tmp_path / "val", {"ants": 2})
    (tmp_path / "val" / "bees").mkdir()
    folders_dataset(tmp_path / "test", {"ants": 1, "bees": 1})
    (tmp_path / "README.md").write_text("hi")
    (tmp_path / "train" / "stray.jpg").write_bytes(b"x")
    index = scan_dataset(tmp_path)
    assert list(index.splits) == ["train", "val", "test"]
    assert index.counts()["test"] == {"ants": 1, "bees": 1}
    assert index.empty_classes == ["bees (val)"]
    assert index.too_small == []
    names = {Path(p).name for p in index.ignored}
    assert {"README.md", "stray.jpg"} <= names


def test_splits_classes_differ(tmp_path):
    folders_dataset(tmp_path / "train", {"ants": 1, "bees": 1, "x": 1})
    folders_dataset(tmp_path / "val", {"ants": 1, "wasps": 1, "x": 1})
    with pytest.raises(DatasetError) as info:
        scan_dataset(tmp_path)
    msg = str(info.value)
    assert "class 'bees' only in train" in msg
    assert "class 'wasps' only in val" in msg
    assert "'ants'" not in msg and "'x'" not in msg


def test_splits_test_classes_differ(tmp_path):
    folders_dataset(tmp_path / "train", {"ants": 1, "bees": 1})
    folders_dataset(tmp_path / "val", {"ants": 1, "bees": 1})
    folders_dataset(tmp_path / "test", {"ants": 1})
    with pytest.raises(DatasetError, match="class 'bees' only in train and val"):
        scan_dataset(tmp_path)


def test_train_without_val_or_test_next_to_other_folders_is_explained(tmp_path):
    folders_dataset(tmp_path / "train", {"ants": 1})
    folders_dataset(tmp_path / "bees", {"ants": 1})
    with pytest.raises(DatasetError, match="no val .* or test folder"):
        scan_dataset(tmp_path)


def test_two_val_folders_is_ambiguous(tmp_path):
    for split in ("train", "val", "valid"):
        folders_dataset(tmp_path / split, {"ants": 1})
    with pytest.raises(DatasetError, match="several"):
        scan_dataset(tmp_path)


# --- errors ----------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        scan_dataset(tmp_path / "nope")


def test_file_not_folder(tmp_path):
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    with pytest.raises(DatasetError, match="not a folder"):
        scan_dataset(f)


def test_no_class_folders(tmp_path):
    make_images(tmp_path, 3)  # images straight in root
    with pytest.raises(DatasetError) as info:
        scan_dataset(tmp_path)
    msg = str(info.value)
    assert "no class folders" in msg and "<root>/<class>/<images>" in msg
    assert "\n" not in msg


def test_dataset_error_is_value_error():
    assert issubclass(DatasetError, ValueError)
