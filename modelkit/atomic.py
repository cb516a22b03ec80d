"""Writes that a crash or a kill never leaves half done, and appends that never follow a link.

Every file a user keeps (checkpoints, run records, dataset journals, uploads) is written whole to
a temp file beside it, fsynced and renamed over the old one, so a reader sees the old file or the
new one. Renaming replaces a symlink at ``path`` instead of writing through it; appends open with
O_NOFOLLOW for the same reason: a run or dataset folder from elsewhere is untrusted input.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    # surrogateescape: a file name that is not UTF-8 (scanned as lone surrogates) is written
    # back as its original bytes instead of failing the write (and the run with it).
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def append_text(path: str | Path, text: str, *, sync: bool = False) -> None:
    """Append ``text`` to the regular file ``path`` (created if missing). A symlink at ``path``
    raises OSError (ELOOP) instead of sending the line to whatever file it points at."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o644)
    try:
        info = os.fstat(fd)  # a hard link is another name of a file elsewhere: never append
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            raise OSError(errno.EPERM, "not a plain file of its own (a hard link?)", str(path))
        # backslashreplace: a line naming a file whose name is not UTF-8 is still written
        data = text.encode("utf-8", "backslashreplace")
        while data:
            data = data[os.write(fd, data) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
