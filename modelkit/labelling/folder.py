"""What a labelling folder holds: the images still to label, the classes made so far and the
not-sure bin, found from names alone (nothing is decoded here).

Two layouts are read. A flat folder of photos: the loose images in ``DATA/`` are unlabelled and
each labelled one moves to ``DATA/<class>/``. Or an ``unlabelled/`` (or ``unlabeled/``) folder
beside class folders: its images, at any depth, are the ones to label. Either way every other
visible sub-folder is a class, read recursively as training reads it, and ``DATA/.modelkit-not-
sure/`` is the skip bin (a dot-folder, so training never sees it).

A folder is untrusted input, as everywhere in modelkit: hidden and system files are left alone,
a symlinked folder is never entered, a symlinked image is refused when it leads out of the folder
(and, among the unlabelled, always: the journal moves only real files), and names stay ``str`` as
the file system gives them (undecodable bytes as surrogates; ``shown`` prints them). Each refusal
is listed with its reason and the rest of the folder is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from modelkit.data.imageio import SYSTEM_FILES
from modelkit.data.layouts import DatasetError, find_split_dirs
from modelkit.data.walk import FOLDER_LINK, walk_images
from modelkit.names import class_name_problem
from modelkit.paths import confined_roots, resolve_allowed

UNLABELLED_NAMES = ("unlabelled", "unlabeled")
SKIP_NAME = ".modelkit-not-sure"
CACHE_NAME = ".modelkit-labelling"  # features, thumbnails and maps (modelkit.labelling.embed)


@dataclass
class LabelFolder:
    root: str  # absolute
    inbox: str  # the folder unlabelled images are in: root, or root/unlabelled
    classes: list[str]
    labelled: dict[str, list[str]]  # class -> absolute image paths, sorted
    unlabelled: list[str]  # absolute paths, sorted
    skipped: list[str]  # in the not-sure bin
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, why), never read
    # (unlabelled name, labelled name) of one file with two names: a move a crash cut short
    # between its two steps; it counts as labelled and ``assign.finish_moves`` completes it
    half_moved: list[tuple[str, str]] = field(default_factory=list)
    # unlabelled image -> its copy in a class folder (labelled by copying; the copy counts)
    copied: dict[str, str] = field(default_factory=dict)

    @property
    def skip_dir(self) -> str:
        return os.path.join(self.root, SKIP_NAME)

    @property
    def cache_dir(self) -> str:
        return os.path.join(self.root, CACHE_NAME)

    def class_dir(self, cls: str) -> str:
        return os.path.join(self.root, cls)

    def label_of(self) -> dict[str, str]:
        """Absolute path -> class, for every labelled image."""
        return {p: c for c, paths in self.labelled.items() for p in paths}

    def all_images(self) -> list[str]:
        """Every image the labeller embeds: labelled, then unlabelled, then skipped."""
        labelled = [p for c in self.classes for p in self.labelled[c]]
        return labelled + self.unlabelled + self.skipped

    def counts(self) -> dict[str, int]:
        return {c: len(self.labelled[c]) for c in self.classes}


def shown(text: str) -> str:
    """A name as text that prints anywhere: bytes that are not UTF-8 become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def class_problem(name: str) -> str | None:
    """Why ``name`` cannot be a new class folder, or None: a valid class name that is one plain
    folder name, not hidden (training skips dot-folders) and not the unlabelled folder."""
    if problem := class_name_problem(name):
        return problem
    if name != name.strip() or "/" in name or "\\" in name or name in (".", ".."):
        return f"class name {name!r} must be one folder name without slashes or outer spaces"
    if name.startswith("."):
        return f"class name {name!r} starts with '.': training skips hidden folders"
    if name.lower() in UNLABELLED_NAMES:
        return f"class name {name!r} is the folder of images still to label"
    return None


def _inside(path: str, real_root: str) -> bool:
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _images(folder: str, real_root: str, refused: list, movable: bool, deep: bool) -> list[str]:
    """Image files in ``folder`` (and below it when ``deep``), by the one folder walk (it never
    enters folder links). ``movable``: the images must be real files (the journal never moves a
    link)."""

    def skipped(path: str, reason: str) -> None:
        if reason == FOLDER_LINK:
            refused.append((path, "is a symlinked folder; labelling does not enter links"))

    found: list[str] = []
    for f in walk_images([folder], lambda p, why: refused.append((p, why)), skipped, deep):
        if f.is_link and (movable or not _inside(f.path, real_root)):
            why = "leads out of the folder" if not _inside(f.path, real_root) else "is a link"
            refused.append((f.path, f"is a symlink that {why}; labelling uses real files"))
        elif os.path.isfile(f.path):  # a pipe or a broken link named like a photo is not one
            found.append(f.path)
    return sorted(found)


def open_folder(root: str | os.PathLike) -> LabelFolder:
    """Read ``root`` as a labelling folder (see the module docstring); a missing folder or a
    train/val split layout (there, labels are the split folders' business) is a DatasetError."""
    root = os.path.abspath(os.fspath(root))
    roots = confined_roots()
    if roots is not None:  # the app: the folder itself must be inside the allowed roots
        resolve_allowed(root, roots)
    if not os.path.isdir(root):
        raise DatasetError(f"{root}: no such folder to label")
    real_root = os.path.realpath(root)
    refused: list[tuple[str, str]] = []
    with os.scandir(root) as it:
        subdirs = sorted(
            e.name for e in it if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
        )
    if find_split_dirs(subdirs, root) is not None:
        raise DatasetError(
            f"{root}: has train/val folders; labelling works on a folder of photos with class "
            "folders beside them (DATA/<class>/), not on a split layout"
        )
    inbox_name = next((d for d in subdirs if d.lower() in UNLABELLED_NAMES), None)
    inbox = os.path.join(root, inbox_name) if inbox_name else root
    unlabelled = _images(root, real_root, refused, movable=True, deep=False)
    if inbox_name:
        unlabelled += _images(inbox, real_root, refused, movable=True, deep=True)
    classes = [d for d in subdirs if d != inbox_name and d.lower() not in SYSTEM_FILES]
    labelled = {c: _images(os.path.join(root, c), real_root, refused, False, True) for c in classes}
    skip = os.path.join(root, SKIP_NAME)
    skipped = (
        _images(skip, real_root, refused, movable=True, deep=True)
        if os.path.isdir(skip) and not os.path.islink(skip)
        else []
    )
    half = _half_moved(unlabelled + skipped, [p for c in classes for p in labelled[c]])
    copies = _copied(root)
    unlabelled_all = unlabelled
    unlabelled = [p for p in unlabelled if p not in half and p not in copies]
    skipped = [p for p in skipped if p not in half]
    folder = LabelFolder(root, inbox, classes, labelled, sorted(unlabelled), skipped, refused)
    folder.half_moved = sorted(half.items())
    folder.copied = {p: copies[p] for p in unlabelled_all if p in copies}
    return folder


def _copied(root: str) -> dict[str, str]:
    """Image -> its copy, for every copy into a class the journal holds and nobody undid."""
    from modelkit.cleaning.journal import JOURNAL_NAME, Journal

    if not os.path.lexists(os.path.join(root, JOURNAL_NAME)):
        return {}
    return {
        os.path.join(root, e.src): os.path.join(root, e.dst)
        for e in Journal(root).active()
        if e.action == "copy"
    }


def _half_moved(loose: list[str], labelled: list[str]) -> dict[str, str]:
    """Loose images that are also a labelled image (one file, two names: the journal's move
    links the new name before it unlinks the old one)."""
    linked = {}
    for p in loose:
        st = os.stat(p)
        if st.st_nlink > 1:
            linked[(st.st_dev, st.st_ino)] = p
    if not linked:
        return {}
    out = {}
    for p in labelled:
        st = os.stat(p)
        if (key := (st.st_dev, st.st_ino)) in linked:
            out[linked[key]] = p
    return out
