"""The folder of unpacked zip uploads: the same zip twice is one folder, and a quota bounds it all.

Each upload is a copy of a zip the person still has, unpacked by ``extract_dataset_zip``. The
folder keeps an index (``.uploads.json``: content hash -> folder name), so uploading the same bytes
again reuses the folder instead of unpacking another copy. The folder's total size is capped by a
quota; ``delete_upload`` removes one unpacked copy, and only when a person asks for it by name.

Checking the quota and unpacking are one step: each upload holds an exclusive ``flock`` on the
folder's ``.uploads.lock`` from the check until its index line is written, so two uploads at once
(two browser tabs, two people) cannot both pass the check against the same free space.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelkit.atomic import atomic_write_json
from modelkit.data.archive import ArchiveError, GiB, ZipSource, dataset_root, extract_dataset_zip
from modelkit.errors import ModelkitError

INDEX = ".uploads.json"
LOCK = ".uploads.lock"
DEFAULT_QUOTA = 20 * GiB
HASH_CHUNK = 1024 * 1024


class UploadError(ModelkitError, ValueError):
    """An upload that cannot be deleted as asked; the message says why."""


@dataclass(frozen=True)
class Upload:
    name: str  # the folder's name inside the uploads folder
    path: Path
    bytes: int
    modified: float  # seconds since the epoch


def upload_quota() -> int:
    """Bytes all uploads may take: ``MODELKIT_UPLOAD_QUOTA_GB`` (a number), else 20 GiB."""
    text = os.environ.get("MODELKIT_UPLOAD_QUOTA_GB", "").strip()
    try:
        return int(float(text) * GiB) if text else DEFAULT_QUOTA
    except ValueError:
        return DEFAULT_QUOTA


def _digest(source: ZipSource) -> str:
    digest = hashlib.sha256()
    if isinstance(source, (bytes, bytearray)):
        digest.update(source)
        return digest.hexdigest()
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
    source.seek(0)
    while chunk := source.read(HASH_CHUNK):
        digest.update(chunk)
    source.seek(0)
    return digest.hexdigest()


def _read_index(uploads_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((uploads_dir / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def list_uploads(uploads_dir: str | os.PathLike) -> list[Upload]:
    """Every unpacked upload, newest first."""
    folder = Path(uploads_dir)
    if not folder.is_dir():
        return []
    out = []
    for child in folder.iterdir():
        if child.name.startswith(".") or child.is_symlink() or not child.is_dir():
            continue
        out.append(Upload(child.name, child, _folder_bytes(child), child.stat().st_mtime))
    return sorted(out, key=lambda u: (u.modified, u.name), reverse=True)


@contextmanager
def _one_at_a_time(uploads_dir: Path) -> Iterator[None]:
    """Hold the uploads folder's lock (waiting for another upload to finish); the kernel drops it
    if the process dies. The lock file is opened without following links and must be a plain
    file of its own: an uploads folder is not trusted to point it at a user's file."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    path = uploads_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        if os.path.islink(path):
            raise ArchiveError(f"{path} is a link; refused to use it (remove it)") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            raise ArchiveError(f"{path} is not a plain file of its own; refused to use it")
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def unpack_upload(
    source: ZipSource,
    uploads_dir: str | os.PathLike,
    name: str | None = None,
    quota: int | None = None,
) -> tuple[Path, bool]:
    """The dataset root of ``source`` unpacked under ``uploads_dir``, and whether an earlier
    upload of the same bytes was reused. ArchiveError when the zip is unsafe or does not fit in
    what is left of the quota."""
    uploads_dir = Path(uploads_dir)
    digest = _digest(source)
    quota = upload_quota() if quota is None else quota
    with _one_at_a_time(uploads_dir):
        known = _read_index(uploads_dir).get(digest)
        if known and "/" not in known and (uploads_dir / known).is_dir():
            return dataset_root(uploads_dir / known), True
        used = sum(u.bytes for u in list_uploads(uploads_dir))
        root = extract_dataset_zip(source, uploads_dir, name=name, quota_left=quota - used)
        top = root if root.parent == uploads_dir else root.parent
        index = {k: v for k, v in _read_index(uploads_dir).items() if (uploads_dir / v).is_dir()}
        index[digest] = top.name
        atomic_write_json(uploads_dir / INDEX, index)
    return root, False


def delete_upload(uploads_dir: str | os.PathLike, name: str) -> None:
    """Remove one unpacked upload (a folder directly inside ``uploads_dir``), at a person's
    explicit request: it is a copy of their zip, which stays where it was."""
    uploads_dir = Path(uploads_dir)
    folder = uploads_dir / name
    if (
        not name
        or name.startswith(".")
        or folder.is_symlink()
        or not folder.is_dir()
        or folder.resolve().parent != uploads_dir.resolve()
    ):
        raise UploadError(f"{name!r} is not an upload in {uploads_dir}")
    with _one_at_a_time(uploads_dir):  # an upload unpacking now rewrites the index too
        shutil.rmtree(folder)
        index = {k: v for k, v in _read_index(uploads_dir).items() if v != name}
        atomic_write_json(uploads_dir / INDEX, index)


__all__ = ["ArchiveError", "Upload", "delete_upload", "list_uploads", "unpack_upload"]
