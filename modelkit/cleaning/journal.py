"""Every change the fix loop makes to a dataset folder, as moves written to an append-only
journal, so each one can be undone and nothing is ever deleted.

The journal is ``<dataset>/.modelkit-journal.jsonl``: one JSON object per line, fsynced, never
rewritten. A relabel moves the file to another class folder, a remove moves it under
``<dataset>/.modelkit-trash/`` (keeping its relative path, so a person can find it by hand), a
re-split moves it to another split folder; ``keep`` records a reviewed image without moving it.
Labelling (``modelkit.labelling``) adds ``label`` and ``skip`` (moves into a class folder or the
not-sure bin) and ``copy`` (a copy into a class folder; its undo moves the copy to the trash).
An undo is itself a line (``undo`` with the id it reverses), so the file tells the whole story.
Both dot-names are skipped by the scanner. A move never overwrites: a taken name gets `` (2)``.

A dataset folder is untrusted input, journal included, so every path the journal reads or writes
goes through one check (``_real``): a plain relative path to a file strictly inside the folder
(never the folder itself, the journal or the trash folder), with no symlink anywhere below the
folder and a real location inside it. The journal file is opened with ``O_NOFOLLOW`` and must be
a regular file; a writer holds an ``flock`` on it from reading the last id to the fsync, so two
processes never write the same id. A line that is not a valid entry is skipped and named in
``Journal.skipped``; the other lines are read as usual.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelkit.errors import ModelkitError
from modelkit.paths import confined_roots, resolve_allowed

JOURNAL_NAME = ".modelkit-journal.jsonl"
TRASH_NAME = ".modelkit-trash"
ACTIONS = ("relabel", "remove", "resplit", "keep", "undo", "label", "skip", "copy")
_LOCK = threading.Lock()  # one writer at a time in this process (app reruns share it)


class JournalError(ModelkitError, RuntimeError):
    """A change cannot be made or undone; the message names the file and why."""


@dataclass(frozen=True)
class Entry:
    id: int
    action: str  # relabel | remove | resplit | keep | undo | label | skip | copy
    src: str  # relative to the dataset root, with "/"
    dst: str
    time: float
    undoes: int | None = None
    note: str = ""

    def to_dict(self) -> dict:
        d = {"id": self.id, "action": self.action, "src": self.src, "dst": self.dst}
        d.update(time=round(self.time, 3), undoes=self.undoes, note=self.note)
        return d


def rel_problem(rel: object) -> str | None:
    """Why ``rel`` cannot be a path in the journal, or None: it must be a file path strictly
    inside the dataset folder, relative, written with "/" and without "." or ".." parts, and
    neither the journal nor the trash folder itself."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        return "not a path inside the dataset folder"
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):  # also "/abs", "a//b", "a/", "." and "a/.."
        return "not a plain relative path inside the dataset folder (absolute, '.' or '..')"
    if JOURNAL_NAME in parts or parts == [TRASH_NAME] or TRASH_NAME in parts[1:]:
        return "names the journal or the trash folder itself"
    return None


def _entry(line: bytes) -> Entry:
    """One journal line as an Entry; ValueError (with the reason) for anything else."""
    d = json.loads(line.decode("utf-8"))
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    ident, action, undoes, note = d["id"], d["action"], d.get("undoes"), d.get("note", "")
    if type(ident) is not int or ident < 1:
        raise ValueError(f"id {ident!r} is not a positive whole number")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    for rel in (d["src"], d["dst"]):
        if problem := rel_problem(rel):
            raise ValueError(f"{rel!r}: {problem}")
    if isinstance(d["time"], bool) or not isinstance(d["time"], (int, float)):
        raise ValueError(f"time {d['time']!r} is not a number")
    if (undoes is not None and type(undoes) is not int) or not isinstance(note, str):
        raise ValueError("undoes or note of the wrong type")
    return Entry(ident, action, d["src"], d["dst"], d["time"], undoes, note)


def parse(data: bytes, name: str | os.PathLike) -> tuple[list[Entry], list[str]]:
    """The entries of a journal's bytes, and a message for each line skipped (a line cut short
    by a crash, or one that is not a valid entry): ``name: line N: why; skipped``."""
    entries, skipped = [], []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            entries.append(_entry(line))
        except (ValueError, KeyError, RecursionError) as exc:  # bad UTF-8/JSON, missing keys
            why = exc if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            skipped.append(f"{name}: line {n}: not a valid journal entry ({why}); skipped")
    return entries, skipped


def unique_path(path: Path) -> Path:
    """``path`` if free, else ``name (2).ext``, ``name (3).ext``… (never an existing file)."""
    if not os.path.lexists(path):
        return path
    n = 2
    while os.path.lexists(cand := path.with_name(f"{path.stem} ({n}){path.suffix}")):
        n += 1
    return cand


def _move(src: Path, dst: Path) -> Path:
    """Move without ever replacing a file: a hard link claims the name atomically (it fails if
    the name is taken), then the old name goes; where links are impossible, rename after a
    check. A symlink would be moved as itself, never followed (callers refuse them anyway)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    while True:
        dst = unique_path(dst)
        try:
            os.link(src, dst, follow_symlinks=False)
        except FileExistsError:
            continue  # taken between the check and the link: pick the next name
        except OSError:
            os.rename(src, dst)
            return dst
        os.unlink(src)
        return dst


def _copy(src: Path, dst: Path) -> Path:
    """Copy to a hidden temp file beside ``dst`` (contents and times), then claim a free name
    with a hard link as ``_move`` does, so a reader never sees half a copy under the real name."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=".modelkit-copy-", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copy2(src, tmp, follow_symlinks=False)
        return _move(Path(tmp), dst)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)  # our own half-made copy, never a user's file


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _join(folder: str, name: str) -> str:
    return name if folder == "." else f"{folder}/{name}"


class Journal:
    """The journal of one dataset folder; ``root`` is checked against the allowed roots when a
    confinement is active (the app). A journal or trash folder that is a symlink, or a journal
    that is not a regular file, is refused here, before anything is read."""

    def __init__(self, root: str | os.PathLike):
        roots = confined_roots()
        if roots is not None:
            resolve_allowed(root, roots)
        # abspath, not realpath: the scanner's paths are under the name the user gave
        self.root = Path(os.path.abspath(root))
        if not self.root.is_dir():
            raise JournalError(f"{self.root}: not a dataset folder")
        self.real_root = Path(os.path.realpath(self.root))  # every file operation starts here
        self.path = self.root / JOURNAL_NAME
        self.skipped: list[str] = []  # the lines the last read skipped, each named
        for name in (JOURNAL_NAME, TRASH_NAME):
            try:
                mode = os.lstat(self.real_root / name).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                raise JournalError(
                    f"{self.root / name}: is a symlink; the Clean journal and its trash must be "
                    "real entries of the dataset folder, so nothing is written elsewhere"
                )
            if name == JOURNAL_NAME and not stat.S_ISREG(mode):
                raise JournalError(f"{self.path}: not a regular file; refusing to use it")

    # -- the one path check ------------------------------------------------------------------------
    def _rel(self, path: str | os.PathLike) -> str:
        """``path`` (absolute, or relative to the working folder) relative to the dataset root;
        "." for the root itself."""
        p = Path(os.path.abspath(path))
        for base in (self.root, self.real_root):
            if p.is_relative_to(base):
                return PurePosixPath(*p.relative_to(base).parts).as_posix()
        raise JournalError(f"{path}: not inside the dataset folder {self.root}")

    def _real(self, rel: str) -> Path:
        """Where journal path ``rel`` is on disk: refused (JournalError naming it) unless it is a
        file path strictly inside the dataset folder with no symlink on the way or at the end,
        and its real location is inside the dataset folder's real location."""
        if problem := rel_problem(rel):
            raise JournalError(f"{rel!r}: {problem} ({self.root})")
        path = self.real_root
        for part in rel.split("/"):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                break  # the rest does not exist yet (a move creates it)
            if stat.S_ISLNK(mode):
                shown = self.root / path.relative_to(self.real_root)
                raise JournalError(
                    f"{shown}: is a symlink; the Clean journal never follows or moves links "
                    f"inside the dataset folder {self.root}"
                )
        full = self.real_root / rel
        real = Path(os.path.realpath(full))
        if real == self.real_root or not real.is_relative_to(self.real_root):
            raise JournalError(f"{self.root / rel}: leaves the dataset folder {self.root}")
        return full

    # -- reading -----------------------------------------------------------------------------------
    def _open(self, flags: int) -> int:
        """The journal file, never through a symlink and never anything but a regular file (a
        FIFO would block a reader forever)."""
        flags |= os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.real_root / JOURNAL_NAME, flags, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise JournalError(f"{self.path}: is a symlink; refusing to follow it") from None
            if exc.errno in (errno.EISDIR, errno.ENXIO):
                raise JournalError(f"{self.path}: not a regular file; refusing to use it") from None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise JournalError(f"{self.path}: not a regular file; refusing to use it")
        if info.st_nlink > 1:  # another name of a file elsewhere: appending would change it
            os.close(fd)
            raise JournalError(f"{self.path}: is a hard link to another file; refusing to use it")
        return fd

    def entries(self) -> list[Entry]:
        """Every valid line, in order; a line cut short by a crash or otherwise malformed is
        skipped and named in ``self.skipped``, never fatal."""
        try:
            fd = self._open(os.O_RDONLY)
        except FileNotFoundError:
            self.skipped = []
            return []
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # no half-written line from a writer
            data = _read_fd(fd)
        finally:
            os.close(fd)
        entries, self.skipped = parse(data, self.path)
        return entries

    def active(self) -> list[Entry]:
        """Changes not undone, oldest first."""
        return _active(self.entries())

    def reviewed(self) -> set[str]:
        """Relative paths of files a person has looked at (kept, or moved here by a change)."""
        return {e.dst for e in self.active()}

    # -- writing -----------------------------------------------------------------------------------
    @contextmanager
    def _writing(self, create: bool = True) -> Iterator[tuple[int, bytes]]:
        """The journal opened for appending and locked against every other writer (threads here,
        other processes), with its bytes as read under the lock; no journal yet reads as empty
        when ``create`` is false (an undo makes no journal)."""
        with _LOCK:
            try:
                fd = self._open(os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0))
            except FileNotFoundError:
                yield -1, b""
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield fd, _read_fd(fd)
            finally:
                os.close(fd)  # releases the flock

    def _append(self, fd: int, data: bytes, action: str, src: str, dst: str, undoes, note):
        entries, _ = parse(data, self.path)
        ident = max((e.id for e in entries), default=0) + 1  # under the lock: no duplicate
        entry = Entry(ident, action, src, dst, time.time(), undoes, note)
        # a name that is not UTF-8 (lone surrogates) is written escaped: ASCII JSON round-trips it
        raw = not any("\udc80" <= ch <= "\udcff" for ch in src + dst)
        line = json.dumps(entry.to_dict(), ensure_ascii=not raw) + "\n"
        if data and not data.endswith(b"\n"):  # a line cut short by a crash keeps its own line
            line = "\n" + line
        buf = line.encode("utf-8")
        while buf:
            buf = buf[os.write(fd, buf) :]
        os.fsync(fd)
        return entry

    def _move_and_append(self, fd: int, data: bytes, action, src_rel, dst_rel, undoes, note):
        """Move (``copy``: copy) ``src_rel`` to ``dst_rel`` (a free name next to it if taken) and
        journal it, with the journal open and locked; a change it cannot record, whatever the
        error, is undone (a copy it made is unlinked: ours, never the person's file)."""
        src, dst = self._real(src_rel), self._real(dst_rel)
        if not src.is_file():
            raise JournalError(f"{self.root / src_rel}: no such file in the dataset")
        moved = _copy(src, dst) if action == "copy" else _move(src, dst)
        try:
            moved_rel = _join(str(PurePosixPath(dst_rel).parent), moved.name)
            return self._append(fd, data, action, src_rel, moved_rel, undoes, note)
        except Exception:
            os.unlink(moved) if action == "copy" else _move(moved, src)
            raise

    def _change(self, action: str, src_rel: str, dst_rel: str) -> Entry:
        with self._writing() as (fd, data):
            return self._move_and_append(fd, data, action, src_rel, dst_rel, None, "")

    def keep(self, path: str | os.PathLike) -> Entry:
        rel = self._rel(path)
        self._real(rel)
        with self._writing() as (fd, data):
            return self._append(fd, data, "keep", rel, rel, None, "")

    def relabel(self, path: str | os.PathLike, class_folder: str | os.PathLike) -> Entry:
        """Move the image into ``class_folder`` (an absolute folder inside the dataset)."""
        dst = _join(self._rel(class_folder), Path(path).name)
        return self._change("relabel", self._rel(path), dst)

    def remove(self, path: str | os.PathLike) -> Entry:
        """Move the image under the trash folder, at its own relative path."""
        rel = self._rel(path)
        return self._change("remove", rel, f"{TRASH_NAME}/{rel}")

    def move_split(self, path: str | os.PathLike, dst_folder: str | os.PathLike) -> Entry:
        dst = _join(self._rel(dst_folder), Path(path).name)
        return self._change("resplit", self._rel(path), dst)

    def move(
        self, path: str | os.PathLike, folder: str | os.PathLike, action: str = "label"
    ) -> Entry:
        """Move the image into ``folder`` (inside the dataset), journalled as ``action``
        (``label`` into a class folder, ``skip`` into the not-sure bin)."""
        if action not in ("label", "skip"):
            raise JournalError(f"{action!r} is not a move the journal records (label, skip)")
        dst = _join(self._rel(folder), Path(path).name)
        return self._change(action, self._rel(path), dst)

    def copy(self, path: str | os.PathLike, folder: str | os.PathLike) -> Entry:
        """Copy the image into ``folder`` (inside the dataset); the original stays put."""
        return self._change("copy", self._rel(path), _join(self._rel(folder), Path(path).name))

    def undo(self, entry_id: int) -> Entry:
        """Reverse one change: the file goes back to its old place (a free name next to it if
        that place is taken now). The change is looked up under the lock, so two undos of the
        same change never both run."""
        with self._writing(create=False) as (fd, data):
            entries, _ = parse(data, self.path)
            entry = next((e for e in _active(entries) if e.id == entry_id), None)
            if entry is None:
                raise JournalError(f"{self.path}: no change #{entry_id} to undo (undone already?)")
            if entry.action == "keep":
                return self._append(fd, data, "undo", entry.dst, entry.src, entry.id, "")
            if not self._real(entry.dst).is_file():
                raise JournalError(
                    f"{self.root / entry.dst}: the file of change #{entry_id} is gone; cannot undo"
                )
            back = f"{TRASH_NAME}/{entry.dst}" if entry.action == "copy" else entry.src
            args = ("undo", entry.dst, back, entry.id, entry.action)
            return self._move_and_append(fd, data, *args)

    def undo_all(self) -> list[Entry]:
        """Undo every active change, newest first; returns the undo entries."""
        return [self.undo(e.id) for e in reversed(self.active())]


def _active(entries: list[Entry]) -> list[Entry]:
    undone = {e.undoes for e in entries if e.action == "undo"}
    return [e for e in entries if e.action != "undo" and e.id not in undone]
