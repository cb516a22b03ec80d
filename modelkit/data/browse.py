"""Server-side folder browsing, kept inside the folders the app is allowed to show.

The app runs on the machine that holds the data, so a person picks a dataset by walking its folders.
Every path from the browser (typed or clicked) goes through ``modelkit.paths.resolve_allowed``
first: symlinks and ``..`` are resolved, and a real location outside every allowed root is refused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from modelkit.data.file_list import is_file_list
from modelkit.data.imageio import SYSTEM_FILES, is_image_file
from modelkit.data.layouts import TEST_NAMES, VAL_NAMES
from modelkit.paths import PathNotAllowedError, normalise_roots, resolve_allowed, within

# How much looks_like_dataset reads: enough for a hint, bounded on huge folders.
HINT_MAX_DIRS = 64
HINT_MAX_ENTRIES = 64


# One error for every refused path, wherever it was typed (see modelkit.paths).
BrowseError = PathNotAllowedError
resolve_inside = resolve_allowed


def open_folder(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> Path:
    """``resolve_inside``, and also BrowseError unless the result is an existing folder."""
    real = resolve_inside(path, roots)
    if not real.exists():
        raise BrowseError(f"folder not found: {real}")
    if not real.is_dir():
        raise BrowseError(f"{real} is a file; choose the folder that holds the images")
    return real


def open_dataset(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> Path:
    """``open_folder``, or a list of files (``modelkit.data.file_list``: the Label page's
    pseudo-label hand-off trains on one) under the same confinement: a data set is either, and
    an address naming a list must survive a reload as one naming a folder does. The list's
    entries are checked when it is read, as a folder's files are when it is scanned."""
    real = resolve_inside(path, roots)
    if real.is_file() and is_file_list(real):
        return real
    return open_folder(real, roots)


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:
        return False


def list_subfolders(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> list[Path]:
    """Visible, readable sub-folders of ``path`` that stay inside the roots, sorted by name.

    Hidden folders (``.name``), folders this process cannot open and symlinks whose target lies
    outside the roots (or is missing) are left out rather than failing the listing.
    """
    allowed = normalise_roots(roots)
    base = open_folder(path, allowed)
    try:
        with os.scandir(base) as it:
            entries = list(it)
    except OSError as exc:
        raise BrowseError(f"cannot read folder {base}: {exc.strerror or exc}") from None
    out: list[Path] = []
    for entry in entries:
        if entry.name.startswith(".") or not _entry_is_dir(entry):
            continue
        child = base / entry.name
        if entry.is_symlink():
            real = child.resolve()
            if not within(real, allowed):
                continue
        if not os.access(child, os.R_OK | os.X_OK):
            continue
        out.append(child)
    return sorted(out, key=lambda p: (p.name.casefold(), p.name))


def parent_within(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> Path | None:
    """The folder above ``path`` if it is still inside the roots; None at the top of a root."""
    allowed = normalise_roots(roots)
    here = resolve_inside(path, allowed)
    parent = here.parent
    if parent == here or not within(parent, allowed):
        return None
    return parent


def peek(path: str, limit: int) -> tuple[list[str], list[str]]:
    """Up to ``limit`` visible entries of ``path``, split into folder names and file names."""
    dirs: list[str] = []
    files: list[str] = []
    try:
        with os.scandir(path) as it:
            for n, entry in enumerate(it):
                if n >= limit:
                    break
                name = entry.name
                if name.startswith(".") or name.lower() in SYSTEM_FILES:
                    continue
                (dirs if _entry_is_dir(entry) else files).append(name)
    except OSError:
        pass
    return dirs, files


def looks_like_dataset(path: str | os.PathLike) -> str | None:
    """A quick hint about what ``path`` holds, from names only (nothing is decoded).

    ``"train/val splits"``, ``"N class folders"``, ``"images but no class folders"``, or None
    when nothing here looks like image data.
    """
    path = os.fspath(path)
    dirs, files = peek(path, HINT_MAX_ENTRIES * 4)
    lower = {d.lower() for d in dirs}
    if "train" in lower and lower & set(VAL_NAMES + TEST_NAMES):
        return "train/val splits"
    with_images = 0
    for name in sorted(dirs)[:HINT_MAX_DIRS]:
        sub_dirs, sub_files = peek(os.path.join(path, name), HINT_MAX_ENTRIES)
        if any(is_image_file(f) for f in sub_files) or sub_dirs:
            with_images += 1
    if with_images >= 2:
        more = "+" if len(dirs) > HINT_MAX_DIRS else ""
        return f"{with_images}{more} class folders"
    if any(is_image_file(f) for f in files):
        return "images but no class folders"
    return None


def folder_fingerprint(path: str | os.PathLike, max_dirs: int = 20_000) -> str:
    """A cheap signature that changes when files are added, removed or renamed under ``path``.

    It hashes the modification time and entry count of every folder (not every file), so it costs
    one directory listing per folder. Editing a file in place keeps the signature; callers that
    care offer a "check again" button.
    """
    digest = hashlib.blake2b(digest_size=12)
    root = os.path.abspath(os.fspath(path))
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack and len(seen) < max_dirs:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            digest.update(f"{folder}!{exc.errno}".encode("utf-8", "surrogateescape"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        subdirs: list[str] = []
        count = 0
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    count += 1
                    if _entry_is_dir(entry):
                        subdirs.append(entry.path)
        except OSError as exc:
            digest.update(f"{folder}!{exc.errno}".encode("utf-8", "surrogateescape"))
            continue
        rel = os.path.relpath(folder, root)
        digest.update(f"{rel}|{st.st_mtime_ns}|{count}\n".encode("utf-8", "surrogateescape"))
        stack.extend(sorted(subdirs, reverse=True))
    return digest.hexdigest()
