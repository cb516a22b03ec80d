"""Every change the fix loop makes to a dataset folder, as moves written to an append-only
journal, so each one can be undone and nothing is ever deleted.

The journal is ``<dataset>/.modelkit-journal.jsonl``: one JSON object per line, fsynced, never
rewritten. A relabel moves the file to another class folder, a remove moves it under
``<dataset>/.modelkit-trash/`` (keeping its relative path, so a person can find it by hand), a
re-split moves it to another split folder; ``keep`` records a reviewed image without moving it.
An undo is itself a line (``undo`` with the id it reverses), so the file tells the whole story.
Both dot-names are skipped by the scanner. A move never overwrites: a taken name gets `` (2)``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelkit.errors import ModelkitError
from modelkit.paths import confined_roots, resolve_allowed

JOURNAL_NAME = ".modelkit-journal.jsonl"
TRASH_NAME = ".modelkit-trash"
_LOCK = threading.Lock()  # one writer at a time in this process (app reruns share it)


class JournalError(ModelkitError, RuntimeError):
    """A change cannot be made or undone; the message names the file and why."""


@dataclass(frozen=True)
class Entry:
    id: int
    action: str  # relabel | remove | resplit | keep | undo
    src: str  # relative to the dataset root, with "/"
    dst: str
    time: float
    undoes: int | None = None
    note: str = ""

    def to_dict(self) -> dict:
        d = {"id": self.id, "action": self.action, "src": self.src, "dst": self.dst}
        d.update(time=round(self.time, 3), undoes=self.undoes, note=self.note)
        return d


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
    check."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    while True:
        dst = unique_path(dst)
        try:
            os.link(src, dst)
        except FileExistsError:
            continue  # taken between the check and the link: pick the next name
        except OSError:
            os.rename(src, dst)
            return dst
        os.unlink(src)
        return dst


class Journal:
    """The journal of one dataset folder; ``root`` is checked against the allowed roots when a
    confinement is active (the app)."""

    def __init__(self, root: str | os.PathLike):
        roots = confined_roots()
        if roots is not None:
            resolve_allowed(root, roots)
        # abspath, not realpath: the scanner's paths are under the name the user gave
        self.root = Path(os.path.abspath(root))
        if not self.root.is_dir():
            raise JournalError(f"{self.root}: not a dataset folder")
        self.path = self.root / JOURNAL_NAME

    # -- reading ---------------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Every line, in order; a line cut short by a crash is skipped, never fatal."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                d = json.loads(line)
                out.append(
                    Entry(
                        int(d["id"]),
                        d["action"],
                        d["src"],
                        d["dst"],
                        d["time"],
                        d.get("undoes"),
                        d.get("note", ""),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def active(self) -> list[Entry]:
        """Changes not undone, oldest first."""
        entries = self.entries()
        undone = {e.undoes for e in entries if e.action == "undo"}
        return [e for e in entries if e.action != "undo" and e.id not in undone]

    def reviewed(self) -> set[str]:
        """Relative paths of files a person has looked at (kept, or moved here by a change)."""
        return {e.dst for e in self.active()}

    # -- writing ---------------------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        if not path.is_relative_to(self.root):
            raise JournalError(f"{path}: not inside the dataset folder {self.root}")
        return PurePosixPath(*path.relative_to(self.root).parts).as_posix()

    def _abs(self, rel: str) -> Path:
        path = Path(os.path.normpath(self.root / rel))
        if not path.is_relative_to(self.root):
            raise JournalError(f"{rel}: outside the dataset folder {self.root}")
        return path

    def _append(self, action: str, src: str, dst: str, undoes: int | None, note: str) -> Entry:
        entries = self.entries()
        entry = Entry(
            max((e.id for e in entries), default=0) + 1, action, src, dst, time.time(), undoes, note
        )
        line = json.dumps(entry.to_dict(), ensure_ascii=False) + "\n"
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell():  # a line cut short by a crash must not swallow this one
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        return entry

    def _record_move(self, action: str, src: Path, dst: Path, undoes: int | None, note: str):
        src = self._abs(self._rel(Path(os.path.abspath(src))))
        if not src.is_file():
            raise JournalError(f"{src}: no such file in the dataset")
        with _LOCK:
            moved = _move(src, dst)
            try:
                return self._append(action, self._rel(src), self._rel(moved), undoes, note)
            except OSError:
                _move(moved, src)  # a change the journal cannot record is not made
                raise

    def keep(self, path: str | os.PathLike) -> Entry:
        rel = self._rel(self._abs(self._rel(Path(os.path.abspath(path)))))
        with _LOCK:
            return self._append("keep", rel, rel, None, "")

    def relabel(self, path: str | os.PathLike, class_folder: str | os.PathLike) -> Entry:
        """Move the image into ``class_folder`` (an absolute folder inside the dataset)."""
        folder = self._abs(self._rel(Path(os.path.abspath(class_folder))))
        return self._record_move("relabel", Path(path), folder / Path(path).name, None, "")

    def remove(self, path: str | os.PathLike) -> Entry:
        """Move the image under the trash folder, at its own relative path."""
        rel = self._rel(Path(os.path.abspath(path)))
        return self._record_move("remove", Path(path), self.root / TRASH_NAME / rel, None, "")

    def move_split(self, path: str | os.PathLike, dst_folder: str | os.PathLike) -> Entry:
        folder = self._abs(self._rel(Path(os.path.abspath(dst_folder))))
        return self._record_move("resplit", Path(path), folder / Path(path).name, None, "")

    def undo(self, entry_id: int) -> Entry:
        """Reverse one change: the file goes back to its old place (a free name next to it if
        that place is taken now)."""
        entry = next((e for e in self.active() if e.id == entry_id), None)
        if entry is None:
            raise JournalError(f"{self.path}: no change #{entry_id} to undo (undone already?)")
        if entry.action == "keep":
            with _LOCK:
                return self._append("undo", entry.dst, entry.src, entry.id, "")
        here = self._abs(entry.dst)
        if not here.is_file():
            raise JournalError(f"{here}: the file of change #{entry_id} is gone; cannot undo")
        return self._record_move("undo", here, self._abs(entry.src), entry.id, entry.action)

    def undo_all(self) -> list[Entry]:
        """Undo every active change, newest first; returns the undo entries."""
        return [self.undo(e.id) for e in reversed(self.active())]
