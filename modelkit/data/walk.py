"""The one walk over folders of photos: image files in name order, without leaving what was named.

Folder prediction, labelling and anything else that takes "a folder of photos" must agree on what
is in it, so they share this walk rather than each keeping a copy. It is a generator (a folder of
a million files is never listed into memory at once, only one folder's names at a time), lists
each folder once with ``os.scandir`` (the entry's type comes from the listing, no extra ``stat``),
sorts each folder's names so two walks of the same tree give the same order, skips dot files and
the files photo tools leave behind, and never enters a link to a folder (no loops, nothing outside
what was named). What it passes over, and folders it cannot list, go to callbacks, so each caller
decides whether that is a count, a row in a CSV or a refusal with a reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modelkit.data.imageio import SYSTEM_FILES, is_image_file

# (path, reason in words): a folder that could not be listed, or an entry passed over
Report = Callable[[str, str], None]

NOT_AN_IMAGE = "not an image by its name"
FOLDER_LINK = "a link to a folder (links to folders are not entered)"


@dataclass(frozen=True)
class Found:
    """One image file the walk found."""

    path: str  # the path as walked: what was named joined with the names below it
    rel: str  # the path below the folder named (posix), the same on every machine
    is_link: bool = False  # a symbolic link to a file (callers that move files may refuse it)


def walk_images(
    roots: Iterable[str | os.PathLike],
    on_error: Report | None = None,
    on_skip: Report | None = None,
    deep: bool = True,
) -> Iterator[Found]:
    """Image files under each of ``roots``: a folder's own files first, then its subfolders,
    each in name order. A root that is a file is yielded as it is (the person named it).

    ``on_error(path, reason)`` hears of folders that cannot be listed (their images are missing
    from the walk, so a caller should say so); ``on_skip(path, reason)`` of files that are not
    images by name and of links to folders. ``deep=False`` stays in each root folder."""
    for root in roots:
        top = os.fspath(root)
        if not os.path.isdir(top):
            yield Found(os.path.normpath(top), Path(top).name, os.path.islink(top))
            continue
        prefix = top if top.endswith(os.sep) else top + os.sep
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                if on_error is not None:
                    on_error(folder, f"cannot list the folder: {exc.strerror or exc}")
                continue
            subfolders: list[str] = []
            for e in entries:
                if e.name.startswith(".") or e.name.lower() in SYSTEM_FILES:
                    continue
                try:
                    is_dir = e.is_dir(follow_symlinks=False)
                    link = e.is_symlink()
                    link_to_dir = link and e.is_dir()
                except OSError as exc:  # a listing entry that vanished or cannot be examined
                    if on_error is not None:
                        on_error(e.path, f"cannot examine: {exc.strerror or exc}")
                    continue
                if is_dir:
                    if deep:
                        subfolders.append(e.path)
                elif link_to_dir:
                    if on_skip is not None:
                        on_skip(e.path, FOLDER_LINK)
                elif is_image_file(e.name):
                    yield Found(e.path, e.path[len(prefix) :].replace(os.sep, "/"), link)
                elif on_skip is not None:
                    on_skip(e.path, NOT_AN_IMAGE)
            stack.extend(reversed(subfolders))
