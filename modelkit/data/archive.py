"""Unpacking a dataset someone dropped as a .zip, without trusting the archive.

Every entry is checked before a single byte is written: names that climb out of the target
(``../``, absolute paths, drive letters), symlinks, password-protected entries, too many files,
too many bytes in total, and entries that inflate suspiciously (zip bombs) are refused with the
entry named. Extraction goes to a temporary folder that is renamed into place at the end, so a
failure leaves nothing behind.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import struct
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Union

from modelkit.data.imageio import SYSTEM_FILES
from modelkit.errors import ModelkitError

GiB = 1024**3
# Small entries may compress extremely well (blank images, text); only judge the ratio above this.
RATIO_MIN_BYTES = 1024 * 1024
COPY_CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, zlib.error)

ZipSource = Union[str, os.PathLike, bytes, bytearray, BinaryIO]


class ArchiveError(ModelkitError, ValueError):
    """A zip file that will not be extracted; the message names the entry and the reason."""


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # safe relative path components
    is_dir: bool


def safe_folder_name(name: str, default: str = "dataset") -> str:
    """``name`` reduced to letters, digits, ``.``, ``_`` and ``-`` (no leading dot), at most 64."""
    cleaned = _UNSAFE_NAME_CHARS.sub("_", name).strip("._-")[:64].strip("._-")
    return cleaned or default


def _source_name(source: ZipSource) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    name = getattr(source, "name", None)
    return Path(name).name if isinstance(name, str) else None


def _split_name(raw: str) -> tuple[str, ...]:
    """Path components of an entry name, or ArchiveError if it could land outside the target."""
    name = raw.replace("\\", "/")
    if "\x00" in name:
        raise ArchiveError(f"zip entry {raw!r} has a NUL character in its name")
    if name.startswith("/") or _DRIVE.match(name):
        raise ArchiveError(f"zip entry {raw!r} has an absolute path; refusing to extract")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise ArchiveError(f"zip entry {raw!r} points outside the archive ('..'); refusing")
    return parts


def _skipped(parts: tuple[str, ...]) -> bool:
    """macOS resource forks, hidden files and OS clutter are not data."""
    return any(p == "__MACOSX" or p.startswith(".") or p.lower() in SYSTEM_FILES for p in parts)


# The central directory lists every entry; a dataset's, even at max_files, is far below this.
MAX_CENTRAL_DIRECTORY = 64 * 1024**2
_CD_HEADER = 46  # fixed part of a central-directory file header
# Fields of zipfile's end record list (zipfile._ECD_*): signature, entries on this disk and in
# all, directory size and offset, where the record lies.
_SIG, _COUNT_DISK, _COUNT, _SIZE, _OFFSET, _LOCATION = 0, 3, 4, 5, 6, 9


def _directory_span(fp: BinaryIO) -> tuple[int, int, int]:
    """(entry count, start, size) of the file list zipfile will parse, from the archive's tail
    alone, so an absurd archive is refused before zipfile parses its entries into memory.

    The end record is read by zipfile's own reader: zipfile takes a ZIP64 end record whenever one
    precedes the classic record, whatever the classic one says, and a check that read ZIP64 only
    when the classic record said so counted a different list than the one parsed."""
    endrec = zipfile._EndRecData(fp)  # noqa: SLF001 - the parse's own reading, not a copy of it
    if not endrec:
        raise zipfile.BadZipFile("File is not a zip file")
    size, offset = endrec[_SIZE], endrec[_OFFSET]
    start = endrec[_LOCATION] - size  # as ZipFile._RealGetContents finds the list
    if endrec[_SIG] == zipfile.stringEndArchive64:
        start -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
    if start < 0 or offset < 0:
        raise zipfile.BadZipFile("Bad offset for central directory")
    return max(endrec[_COUNT_DISK], endrec[_COUNT]), start, size


def _check_directory(fp: BinaryIO, max_entries: int, label: str) -> None:
    """Refuse a zip whose central directory is too big or lists too many entries.

    The count in the end record can lie, so the directory's headers are counted too (their fixed
    part only), stopping as soon as there are too many; a list that is not headers from start to
    end is refused, so the count covers every entry zipfile would read."""
    count, start, size = _directory_span(fp)
    if count > max_entries:
        raise ArchiveError(f"{label} lists {count:,} entries, more than {max_entries:,}; refusing")
    if size > MAX_CENTRAL_DIRECTORY:
        raise ArchiveError(f"{label} has an implausible file list ({size:,} bytes); refusing")
    fp.seek(start)
    directory = fp.read(size)
    pos = seen = 0
    while pos + _CD_HEADER <= len(directory) and directory[pos : pos + 4] == b"PK\x01\x02":
        seen += 1
        if seen > max_entries:
            raise ArchiveError(f"{label} lists more than {max_entries:,} entries; refusing")
        name_len, extra_len, comment_len = struct.unpack_from("<3H", directory, pos + 28)
        pos += _CD_HEADER + name_len + extra_len + comment_len
    if pos != size:
        raise ArchiveError(f"{label} has a damaged file list (not where its end record says)")
    fp.seek(0)


def _entries(zf: zipfile.ZipFile, max_total_bytes: int, max_ratio: float, max_files: int):
    entries: list[_Entry] = []
    total = 0
    packed = 0
    files = 0
    for info in zf.infolist():
        parts = _split_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(f"zip entry {info.filename!r} is a symbolic link; refusing")
        if not parts or _skipped(parts):
            continue
        is_dir = info.is_dir()
        if not is_dir:
            if info.flag_bits & 0x1:
                raise ArchiveError(
                    f"zip entry {info.filename!r} is password-protected; zip it without a password"
                )
            files += 1
            if files > max_files:
                raise ArchiveError(f"the zip holds more than {max_files:,} files; refusing")
            total += info.file_size
            packed += info.compress_size
            if total > max_total_bytes:
                raise ArchiveError(
                    f"the zip would unpack to more than {max_total_bytes / GiB:.1f} GiB "
                    f"(reached at {info.filename!r}); refusing"
                )
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_MIN_BYTES and ratio > max_ratio:
                raise ArchiveError(
                    f"zip entry {info.filename!r} expands {ratio:,.0f}x "
                    f"({info.compress_size:,} -> {info.file_size:,} bytes), beyond the "
                    f"{max_ratio:,.0f}x limit; this looks like a zip bomb"
                )
        entries.append(_Entry(info, parts, is_dir))
    # Many small entries can each stay under the per-entry threshold: judge the whole archive too.
    ratio = total / max(packed, 1)
    if total > RATIO_MIN_BYTES and ratio > max_ratio:
        raise ArchiveError(
            f"the zip expands {ratio:,.0f}x as a whole ({packed:,} -> {total:,} bytes), beyond "
            f"the {max_ratio:,.0f}x limit; this looks like a zip bomb"
        )
    return entries


def _extract(zf: zipfile.ZipFile, entries: list[_Entry], target: Path) -> int:
    """Write ``entries`` under ``target``; returns the number of files written."""
    written = 0
    real_target = target.resolve()
    for entry in entries:
        out = target.joinpath(*entry.parts)
        if not out.resolve().is_relative_to(real_target):  # belt and braces
            raise ArchiveError(f"zip entry {entry.info.filename!r} points outside the archive")
        try:
            if entry.is_dir:
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(
                f"cannot extract {entry.info.filename!r}: {exc.strerror or exc}"
            ) from None
        limit = entry.info.file_size
        size = 0
        try:
            with zf.open(entry.info) as src, open(out, "wb") as dst:
                while chunk := src.read(COPY_CHUNK):
                    size += len(chunk)
                    if size > limit:  # header lied about the size
                        raise ArchiveError(
                            f"zip entry {entry.info.filename!r} is larger than its header says"
                        )
                    dst.write(chunk)
        except _READ_ERRORS as exc:
            raise ArchiveError(f"cannot extract {entry.info.filename!r}: {exc}") from None
        except OSError as exc:
            raise ArchiveError(
                f"cannot extract {entry.info.filename!r}: {exc.strerror or exc}"
            ) from None
        written += 1
    return written


def _move_into_place(tmp: Path, dest_parent: Path, name: str) -> Path:
    for n in range(1, 10_000):
        dest = dest_parent / (name if n == 1 else f"{name}-{n}")
        if dest.exists():
            continue
        try:
            os.rename(tmp, dest)
        except OSError:
            if dest.exists():  # taken in the meantime
                continue
            raise
        return dest
    raise ArchiveError(f"too many folders named {name!r} in {dest_parent}")


def dataset_root(folder: Path) -> Path:
    """``folder``, or its only visible sub-folder when the zip wrapped everything in one."""
    visible = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(visible) == 1 and visible[0].is_dir():
        return visible[0]
    return folder


def extract_dataset_zip(
    zip_source: ZipSource,
    dest_parent: str | os.PathLike,
    name: str | None = None,
    max_total_bytes: int = 4 * GiB,
    max_ratio: float = 200.0,
    max_files: int = 200_000,
    quota_left: int | None = None,
    max_entries: int | None = None,
) -> Path:
    """Extract a dataset zip into ``dest_parent/<name>`` and return the dataset's root folder.

    ``zip_source`` is a path, the zip's bytes, or a binary file object (e.g. an uploaded file).
    ``name`` defaults to the zip's file name without ``.zip``; a folder of that name that already
    exists is kept and ``-2``, ``-3``, ... is appended instead. When the zip holds one top-level
    folder, that folder is returned. Raises ArchiveError (nothing written) when the zip is unsafe,
    too large, empty or not a zip at all. ``quota_left``: bytes the unpacked files may take
    (the uploads quota), checked from the headers before anything is written. ``max_entries``:
    how many entries the archive may list at all (folders and macOS ``._`` twins included),
    checked from its end record before any entry is parsed; by default 2 x max_files + 10,000.
    """
    if max_entries is None:
        max_entries = 2 * max_files + 10_000
    if isinstance(zip_source, (bytes, bytearray)):
        zip_source = io.BytesIO(bytes(zip_source))
    label = _source_name(zip_source) or "the upload"
    if name is None:
        stem = label[:-4] if label.lower().endswith(".zip") else label
        name = stem if label != "the upload" else "dataset"
    folder_name = safe_folder_name(name)
    dest_parent = Path(dest_parent)
    if isinstance(zip_source, (str, os.PathLike)):
        try:
            with open(zip_source, "rb") as fp:
                return _extract_from(fp, dest_parent, folder_name, label, max_total_bytes,
                                     max_ratio, max_files, quota_left, max_entries)  # fmt: skip
        except FileNotFoundError:
            raise ArchiveError(f"zip file not found: {zip_source}") from None
        except IsADirectoryError:
            raise ArchiveError(f"{label} is a folder, not a zip file") from None
    return _extract_from(zip_source, dest_parent, folder_name, label, max_total_bytes, max_ratio,
                         max_files, quota_left, max_entries)  # fmt: skip


def _extract_from(
    fp: BinaryIO,
    dest_parent: Path,
    folder_name: str,
    label: str,
    max_total_bytes: int,
    max_ratio: float,
    max_files: int,
    quota_left: int | None,
    max_entries: int,
) -> Path:
    try:
        _check_directory(fp, max_entries, label)
        zf = zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error) as exc:
        raise ArchiveError(f"{label} is not a readable zip file ({exc})") from None
    with zf:
        entries = _entries(zf, max_total_bytes, max_ratio, max_files)
        needed = sum(e.info.file_size for e in entries if not e.is_dir)
        if quota_left is not None and needed > quota_left:
            raise ArchiveError(
                f"{label} unpacks to {needed / GiB:.2f} GiB but only {max(quota_left, 0) / GiB:.2f}"
                " GiB of the uploads quota is left; delete old uploads on the Dataset page"
            )
        if not any(not e.is_dir for e in entries):
            raise ArchiveError(f"{label} contains no files (hidden and __MACOSX files are skipped)")
        dest_parent.mkdir(parents=True, exist_ok=True)
        tmp = dest_parent / f".{folder_name}.extracting-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _extract(zf, entries, tmp)
            final = _move_into_place(tmp, dest_parent, folder_name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dataset_root(final)
