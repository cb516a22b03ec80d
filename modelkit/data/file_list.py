"""A data set given as a list of files instead of a folder: ``{"classes": [...], "splits":
{split: [[path, label], ...]}}``, the shape of a run's splits.json.

Why a list: some training sets are not one folder. ``auto``'s race trains on chosen training
images with others held out, and a labelling folder trains on its labelled images plus the
unlabelled ones the head is sure of (``modelkit.labelling.pseudo``) without moving a file. Both
the run (``training.setup.load_splits``) and ``scan_dataset`` (so ``auto`` can look at it; it
also leaves out, when confined, listed files outside the allowed roots) read it here. Keys other
than ``classes`` and ``splits`` are left for whoever wrote the list.

A list is untrusted input as a folder is: it is read through the bounded reader and every entry
is checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from modelkit.atomic import atomic_write_json
from modelkit.data.layouts import DatasetError
from modelkit.paths import MAX_RUN_FILE_BYTES, read_untrusted

SUFFIX = ".json"


def is_file_list(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a list of files (a JSON file) rather than a data set folder."""
    return os.fspath(path).endswith(SUFFIX) and os.path.isfile(path)


def read_file_list(path: str | os.PathLike) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """(classes, split -> [(path, class index)]) of the list at ``path``; a DatasetError says
    what is wrong with it."""
    try:  # surrogateescape: names that are not UTF-8 were written back as their bytes
        raw = json.loads(read_untrusted(Path(path), MAX_RUN_FILE_BYTES, roots=None).decode(
            "utf-8", "surrogateescape"))  # fmt: skip
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a list of files ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("splits"), dict):
        raise DatasetError(f"{path}: not a list of files (classes and splits)")
    classes = raw.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DatasetError(f"{path}: 'classes' must be a list of class names")
    splits: dict[str, list[tuple[str, int]]] = {}
    for split, rows in raw["splits"].items():
        if not isinstance(rows, list):
            raise DatasetError(f"{path}: split {split!r} must be a list of [path, label]")
        samples = []
        for row in rows:
            label = _label(row) if isinstance(row, list) and len(row) == 2 else -1
            if not 0 <= label < len(classes) or not isinstance(row[0], str):
                raise DatasetError(f"{path}: {split}: {str(row)[:80]} is not [path, class index]")
            samples.append((row[0], label))
        if samples:
            splits[split] = samples
    if not splits.get("train"):
        raise DatasetError(f"{path}: no training images listed")
    return list(classes), splits


def write_file_list(
    path: str | os.PathLike, classes: list[str], splits: dict, **extra: Any
) -> Path:
    """Write a list ``read_file_list`` reads (atomically): ``splits`` maps a split to
    (path, class index) pairs; ``extra`` keys are the writer's own (training ignores them)."""
    rows = {s: [[p, int(y)] for p, y in pairs] for s, pairs in splits.items()}
    atomic_write_json(Path(path), {"classes": list(classes), "splits": rows, **extra})
    return Path(path)


def _label(row: list) -> int:
    try:  # a writer may have stored the index as "3" (numpy integers through json's default=str)
        return int(row[1])
    except (TypeError, ValueError):
        return -1
