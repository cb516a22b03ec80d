"""Scanning a dataset folder into a DatasetIndex: classes, splits and what was skipped.

Scanning only looks at names (no decoding), so it stays fast on large folders; whether each file
actually decodes is the DatasetReport's job (``modelkit.data.report``).
"""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from modelkit.data.file_list import is_file_list, read_file_list
from modelkit.data.imageio import SYSTEM_FILES, is_image_file
from modelkit.data.layouts import DatasetError, find_split_dirs, layout_note
from modelkit.paths import confined_roots, real_within, resolve_allowed

EXPECTED_LAYOUT = (
    "expected either <root>/<class>/<images> or <root>/train/<class>/<images> "
    "with <root>/val/<class>/<images> and/or <root>/test/<class>/<images>"
)


@dataclass(frozen=True)
class Sample:
    path: str  # absolute path string
    label: int  # index into DatasetIndex.classes


@dataclass
class DatasetIndex:
    root: str
    layout: str  # "folders" or "splits"
    classes: list[str]
    splits: dict[str, list[Sample]]
    ignored: list[str] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    too_small: list[str] = field(default_factory=list)
    # Folders that could not be listed (e.g. permission denied): "path: reason".
    unreadable_dirs: list[str] = field(default_factory=list)
    # Class folders and files skipped because their real location leaves the allowed roots
    # (only when the scan runs confined, as it does for the app).
    outside_roots: list[str] = field(default_factory=list)
    # Split layout: the folder each split was read from ({"train": "Train", "test": "TEST"}).
    split_folders: dict[str, str] = field(default_factory=dict)
    # Split layout without a val folder: the share of each train class drawn into val.
    val_from_train: float | None = None

    def layout_note(self) -> str:
        """Which folder was used for what, in one sentence (check, the run log, the app)."""
        if self.layout == "list":
            return "A list of files: its train/val/test splits are the list's own."
        if self.layout != "splits":
            return "No train/val/test folders: each class folder is split per class."
        return layout_note(self.split_folders, self.val_from_train)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split per class, zeros included so tables line up."""
        out: dict[str, dict[str, int]] = {}
        for split, samples in self.splits.items():
            row = dict.fromkeys(self.classes, 0)
            for s in samples:
                row[self.classes[s.label]] += 1
            out[split] = row
        return out

    def all_samples(self) -> list[tuple[str, Sample]]:
        return [(split, s) for split, samples in self.splits.items() for s in samples]


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _is_system(name: str) -> bool:
    return name.lower() in SYSTEM_FILES


def _list_dir(path: str, errors: list[str]) -> list[os.DirEntry]:
    """Sorted entries of ``path``; an unreadable folder is recorded instead of crashing the scan."""
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        errors.append(f"{path}: {exc.strerror or exc}")
        return []


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:
        return False


def _leaves_roots(entry: os.DirEntry, outside: list[str]) -> bool:
    """True (and the entry recorded) when the scan is confined and the entry, a symlink, really
    lies outside the roots. Only links need a look: the walk starts inside and enters no folder
    that leaves, so a plain entry is where its folder is."""
    roots = confined_roots()
    if roots is None or not entry.is_symlink() or real_within(entry.path, roots):
        return False
    outside.append(entry.path)
    return True


def _subdirs(
    path: str, ignored: list[str], errors: list[str], outside: list[str]
) -> tuple[list[str], list[str]]:
    """Visible sub-folder names of ``path`` and the full paths of everything else in it."""
    dirs: list[str] = []
    others: list[str] = []
    for entry in _list_dir(path, errors):
        if _is_hidden(entry.name) or _is_system(entry.name):
            ignored.append(entry.path)
        elif _leaves_roots(entry, outside):
            continue
        elif _entry_is_dir(entry):
            dirs.append(entry.name)
        else:
            others.append(entry.path)
    return dirs, others


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _walk_images(
    top: str, root: str, ignored: list[str], errors: list[str], outside: list[str]
) -> Iterator[str]:
    """Image files under class folder ``top``, recursively.

    Symlinked folders are followed (people link photos in from elsewhere), but each real folder
    is visited once, which keeps a symlink loop from recursing forever, and a link back into the
    dataset outside this class (e.g. to the root) is skipped so it cannot pull in other classes.
    """
    seen: set[tuple[int, int]] = set()
    real_root, real_top = os.path.realpath(root), os.path.realpath(top)
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            errors.append(f"{folder}: {exc.strerror or exc}")
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        if folder != top and os.path.islink(folder):
            real = os.path.realpath(folder)
            into_dataset = _inside(real, real_root) or _inside(real_root, real)
            if into_dataset and not _inside(real, real_top):
                ignored.append(folder)
                continue
        subdirs: list[str] = []
        for entry in _list_dir(folder, errors):
            name = entry.name
            if _is_hidden(name) or _is_system(name):
                ignored.append(entry.path)
                continue
            if _leaves_roots(entry, outside):
                continue
            if _entry_is_dir(entry):
                subdirs.append(entry.path)
                continue
            try:
                is_file = stat.S_ISREG(os.stat(entry.path).st_mode)
            except OSError:  # broken symlink
                is_file = False
            if is_file and is_image_file(name):
                yield entry.path
            else:
                ignored.append(entry.path)
        stack.extend(reversed(subdirs))  # depth-first, alphabetical


def _check_ratios(val_ratio: float, test_ratio: float) -> None:
    if not 0 <= val_ratio < 1 or not 0 <= test_ratio < 1 or val_ratio + test_ratio >= 1:
        raise DatasetError(
            f"val_ratio={val_ratio} and test_ratio={test_ratio} must each be in [0, 1) and leave "
            "images for training (sum below 1)"
        )


def _check_root(root: str) -> None:
    if not os.path.exists(root):
        raise DatasetError(f"dataset folder not found: {root}")
    if not os.path.isdir(root):
        raise DatasetError(f"dataset path is a file, not a folder: {root}")
    try:
        with os.scandir(root):
            pass
    except OSError as exc:
        raise DatasetError(f"cannot read dataset folder {root}: {exc.strerror or exc}") from None


def _class_difference(by_split: dict[str, list[str]]) -> str:
    every = set().union(*map(set, by_split.values()))
    parts = []
    for cls in sorted(every):
        present = [s for s, names in by_split.items() if cls in names]
        if len(present) != len(by_split):
            parts.append(f"class '{cls}' only in {' and '.join(present)}")
    return "; ".join(parts)


def _scan_splits(
    root: str,
    split_dirs: dict[str, str],
    others: list[str],
    outside: list[str],
    carve: tuple[float, int],
) -> DatasetIndex:
    """The splits as the folders give them; without a val folder, val is drawn from train
    (``carve``: val_ratio, seed) per class, as for a plain class-folder dataset."""
    ignored = list(others)
    errors: list[str] = []
    names_by_split: dict[str, list[str]] = {}
    for split, folder in split_dirs.items():
        dirs, loose = _subdirs(os.path.join(root, folder), ignored, errors, outside)
        names_by_split[split] = dirs
        ignored.extend(loose)
    if any(set(v) != set(names_by_split["train"]) for v in names_by_split.values()):
        raise DatasetError(
            f"class folders differ between splits in {root}: {_class_difference(names_by_split)}"
        )
    classes = sorted(names_by_split["train"])
    if not classes:
        raise DatasetError(f"no class folders inside {os.path.join(root, split_dirs['train'])}")
    drawn = "val" not in split_dirs
    splits: dict[str, list[Sample]] = {"train": [], "val": []} if drawn else {}
    empty: list[str] = []
    too_small: list[str] = []
    for split, folder in split_dirs.items():
        samples = splits.setdefault(split, [])
        for label, cls in enumerate(classes):
            top = os.path.join(root, folder, cls)
            paths = list(_walk_images(top, root, ignored, errors, outside))
            if not paths:
                empty.append(f"{cls} ({split})")
            if split == "train" and drawn:
                if len(paths) < 2:
                    too_small.append(cls)
                parts = _draw(paths, cls, carve[1], carve[0], 0.0)
                splits["val"].extend(Sample(p, label) for p in parts["val"])
                paths = parts["train"]
            samples.extend(Sample(p, label) for p in paths)
    index = DatasetIndex(
        root, "splits", classes, splits, ignored, empty, too_small, errors, outside
    )
    index.split_folders = dict(split_dirs)
    index.val_from_train = carve[0] if drawn else None
    return index


def _split_counts(n: int, val_ratio: float, test_ratio: float) -> tuple[int, int]:
    """How many of a class's ``n`` images go to val and test (train keeps at least one)."""
    n_val = int(n * val_ratio + 0.5)
    n_test = int(n * test_ratio + 0.5)
    if val_ratio > 0 and n >= 2:
        n_val = max(n_val, 1)
    if test_ratio > 0 and n >= 3:
        n_test = max(n_test, 1)
    while n_val + n_test >= n and (n_val or n_test):  # keep one for training
        if n_test >= n_val and n_test:
            n_test -= 1
        else:
            n_val -= 1
    return n_val, n_test


def _draw(
    paths: list[str], cls: str, seed: int, val_ratio: float, test_ratio: float
) -> dict[str, list[str]]:
    """One class's images split into train/val/test, each sorted; the same for the same seed."""
    paths = sorted(paths)
    # Seeded by class name too, so adding a class does not reshuffle the others.
    random.Random(f"{seed}/{cls}".encode("utf-8", "surrogateescape")).shuffle(paths)
    n_val, n_test = _split_counts(len(paths), val_ratio, test_ratio)
    return {
        "val": sorted(paths[:n_val]),
        "test": sorted(paths[n_val : n_val + n_test]),
        "train": sorted(paths[n_val + n_test :]),
    }


def _scan_folders(
    root: str,
    classes: list[str],
    others: list[str],
    val_ratio: float,
    test_ratio: float,
    seed: int,
    outside: list[str],
) -> DatasetIndex:
    ignored = list(others)  # loose files in root belong to no class
    errors: list[str] = []
    split_names = ["train", "val"] + (["test"] if test_ratio > 0 else [])
    splits: dict[str, list[Sample]] = {s: [] for s in split_names}
    empty: list[str] = []
    too_small: list[str] = []
    needed = 1 + (val_ratio > 0) + (test_ratio > 0)
    for label, cls in enumerate(classes):
        paths = sorted(_walk_images(os.path.join(root, cls), root, ignored, errors, outside))
        if not paths:
            empty.append(cls)
            continue
        if len(paths) < needed:
            too_small.append(cls)
        parts = _draw(paths, cls, seed, val_ratio, test_ratio)
        for split in split_names:
            splits[split].extend(Sample(p, label) for p in parts[split])
    return DatasetIndex(
        root, "folders", classes, splits, ignored, empty, too_small, errors, outside
    )


def _scan_list(path: str, roots) -> DatasetIndex:
    """A list of files (``modelkit.data.file_list``) as an index with the list's own splits;
    confined, listed files whose real location leaves the roots are left out and named."""
    classes, raw = read_file_list(path)
    outside = [p for rows in raw.values() for p, _ in rows if roots and not real_within(p, roots)]
    skip = set(outside)
    splits = {s: [Sample(p, y) for p, y in rows if p not in skip] for s, rows in raw.items()}
    present = {x.label for samples in splits.values() for x in samples}
    empty = [c for i, c in enumerate(classes) if i not in present]
    return DatasetIndex(path, "list", classes, splits, empty_classes=empty, outside_roots=outside)


def scan_dataset(
    root: str | os.PathLike, val_ratio: float = 0.2, test_ratio: float = 0.0, seed: int = 0
) -> DatasetIndex:
    """Index the images under ``root`` by class and split, without decoding any of them.

    A folder with ``train`` and ``val``/``valid``/``validation``/``eval`` (any case) keeps the
    split it was given, with ``test`` as the test split if present; ``train`` + ``test`` without
    a val folder draws val from train per class (``val_ratio``; ``test_ratio`` is unused).
    Otherwise each sub-folder is a class and the split is drawn per class, so every class is
    represented in validation, and is the same for the same ``seed``.
    ``index.layout_note()`` says which folder was used for what. A ``.json`` file is read as a
    list of files with its own splits (``modelkit.data.file_list``; layout ``"list"``).
    """
    root = os.path.abspath(os.fspath(root))
    roots = confined_roots()
    if roots is not None:  # for the app: the folder itself must be inside the roots too
        resolve_allowed(root, roots)
    if is_file_list(root):
        return _scan_list(root, roots)
    _check_root(root)
    ignored: list[str] = []
    errors: list[str] = []
    outside: list[str] = []
    dirs, others = _subdirs(root, ignored, errors, outside)
    split_dirs = find_split_dirs(dirs, root)
    if split_dirs is not None:
        extra = [os.path.join(root, d) for d in dirs if d not in split_dirs.values()]
        if "val" not in split_dirs:
            _check_ratios(val_ratio, 0.0)
        carve = (val_ratio, seed)
        index = _scan_splits(root, split_dirs, ignored + others + extra, outside, carve)
    else:
        if not dirs:
            raise DatasetError(f"no class folders found in {root}; {EXPECTED_LAYOUT}")
        _check_ratios(val_ratio, test_ratio)
        index = _scan_folders(
            root, sorted(dirs), ignored + others, val_ratio, test_ratio, seed, outside
        )
    index.unreadable_dirs[:0] = errors
    return index
