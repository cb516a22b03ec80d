"""Telling a folder of data sets from a data set, by names only (nothing is decoded).

A folder such as ``benchmarks/`` holding ``flowers/``, ``pets/`` and ``scenes/``, each with its
own class folders, looks to a one-level peek exactly like a data set of three classes; training
on it would make "flowers", "pets" and "scenes" the labels. The browser asks ``datasets_inside``
first and, when it answers, offers each data set instead of the folder itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from modelkit.data.browse import peek
from modelkit.data.imageio import is_image_file
from modelkit.data.layouts import TEST_NAMES, TRAIN_NAMES, VAL_NAMES

# Bounds on what one look reads, so a huge folder answers quickly.
MAX_CHILDREN = 48  # sub-folders of a folder looked at
MAX_ENTRIES = 256  # entries read per folder
SPLIT_NAMES = frozenset(TRAIN_NAMES + VAL_NAMES + TEST_NAMES)


@dataclass(frozen=True)
class InnerDataset:
    """One data set inside a folder of data sets, with what it looks like."""

    path: Path
    hint: str  # "train/val splits" or "N class folders"


def _peek(path: str) -> tuple[list[str], int]:
    """Up to MAX_ENTRIES visible entries of ``path``: the folder names and the image count."""
    dirs, files = peek(path, MAX_ENTRIES)
    return sorted(dirs), sum(1 for name in files if is_image_file(name))


def _holds_images(path: str) -> bool:
    """Whether ``path`` has an image directly in it or one folder down (a class folder may
    group its photos in sub-folders)."""
    dirs, images = _peek(path)
    if images:
        return True
    return any(_peek(os.path.join(path, d))[1] for d in dirs[:8])


def dataset_hint(path: str | os.PathLike) -> str | None:
    """What ``path`` looks like as a data set of its own: ``"train/val splits"``,
    ``"N class folders"`` (two or more sub-folders holding images, and fewer images loose
    beside them than class folders), or None."""
    path = os.fspath(path)
    dirs, loose = _peek(path)
    if {d.lower() for d in dirs} & set(TRAIN_NAMES) and len(dirs) > 1:
        if {d.lower() for d in dirs} & (SPLIT_NAMES - set(TRAIN_NAMES)):
            return "train/val splits"
    classes = sum(1 for d in dirs[:MAX_CHILDREN] if _holds_images(os.path.join(path, d)))
    if classes >= 2 and loose < classes:
        more = "+" if len(dirs) > MAX_CHILDREN else ""
        return f"{classes}{more} class folders"
    return None


def datasets_inside(
    path: str | os.PathLike, children: list[str] | None = None
) -> list[InnerDataset]:
    """The data sets in ``path`` when ``path`` is a folder of data sets, else an empty list.

    ``children`` limits the look to those sub-folder names (the browser passes the ones that
    stay inside the folders the app may open, so nothing outside them is read).

    It is one when at least two of its sub-folders look like data sets (``dataset_hint``) and
    they outnumber its sub-folders of images (class folders), with few images loose in it. A
    data set whose class folders split their photos into sub-folders can look like this too;
    the browser keeps "use this folder" for that case, as the second choice."""
    path = os.fspath(path)
    dirs, loose = _peek(path)
    if children is not None:
        dirs = [d for d in dirs if d in set(children)]
    if {d.lower() for d in dirs} & SPLIT_NAMES:
        return []  # train/ beside val/ or test/: a data set in split folders
    found: list[InnerDataset] = []
    plain = 0  # sub-folders of images that are no data set: class folders of this one
    for name in dirs[:MAX_CHILDREN]:
        child = os.path.join(path, name)
        hint = dataset_hint(child)
        if hint:
            found.append(InnerDataset(Path(child), hint))
        elif _peek(child)[1]:
            plain += 1
            if plain > len(found) + 2:
                return []  # class folders, clearly: stop looking
    if len(found) < 2 or plain >= len(found) or loose >= len(found):
        return []
    return found
