"""Split-folder layouts: which sub-folders of a dataset are train, val and test, and the
sentence that tells a person which folder was used for what.

Public datasets name their splits in many ways (``train/`` + ``test/`` only, ``valid/``,
``Validation/``, ``eval/``, ``TEST/``); names are compared case-insensitively. Without a val
folder, val is drawn from train per class (``modelkit.data.scan``).
"""

from __future__ import annotations

import os

from modelkit.errors import ModelkitError

TRAIN_NAMES = ("train",)
VAL_NAMES = ("val", "valid", "validation", "eval")
TEST_NAMES = ("test",)


class DatasetError(ModelkitError, ValueError):
    """A dataset folder that cannot be used as given; the message says what to change."""


def find_split_dirs(names: list[str], root: str) -> dict[str, str] | None:
    """Map split -> folder name when ``names`` look like a train + val and/or test layout.

    Without a val folder (train/ + test/, as many public datasets come), val is drawn from
    train by the scan; train/ alone next to nothing else is split the same way."""
    found: dict[str, str] = {}
    for split, accepted in (("train", TRAIN_NAMES), ("val", VAL_NAMES), ("test", TEST_NAMES)):
        matches = [n for n in names if n.lower() in accepted]
        if len(matches) > 1:
            raise DatasetError(
                f"{root} has several candidate {split} folders ({', '.join(matches)}); keep one"
            )
        if matches:
            found[split] = matches[0]
    if "train" not in found:
        return None
    if len(found) == 1 and len(names) > 1:
        others = ", ".join(n for n in names if n != found["train"])
        raise DatasetError(
            f"{root} has a '{found['train']}' folder but no val ({', '.join(VAL_NAMES)}) or test "
            f"folder next to it, and other folders ({others}); add a val or test folder, or point "
            "at the train folder itself to split it automatically"
        )
    return found


def layout_note(split_folders: dict[str, str], val_from_train: float | None) -> str:
    """'Split folders: Train/ for train and val (a stratified 20% ...), TEST/ for test.'"""
    parts = []
    for split, folder in split_folders.items():
        if split == "train" and val_from_train is not None:
            parts.append(
                f"{folder}/ for train and val (a stratified {val_from_train:.0%} of each class "
                "drawn for validation, the same every time)"
            )
        else:
            parts.append(f"{folder}/ for {split}")
    return "Split folders: " + ", ".join(parts) + "."


def describe_layout(root: str | os.PathLike, val_ratio: float) -> str:
    """The layout note for ``root`` from its top-level folder names only (one listing), for
    places that have no DatasetIndex at hand (the run log)."""
    try:
        with os.scandir(root) as it:
            names = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return ""
    try:
        found = find_split_dirs(names, os.fspath(root))
    except DatasetError:
        return ""
    if found is None:
        return "No train/val/test folders: each class folder is split per class."
    return layout_note(found, None if "val" in found else val_ratio)
