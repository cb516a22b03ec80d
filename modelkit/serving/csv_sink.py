"""A CSV of predictions that a crash or a kill -9 cannot damage and a rerun continues.

Rows go out a batch at a time and are flushed to disk before the next batch starts, so a kill
loses at most the batch in flight. The file is only ever appended to; the one exception is a
rerun that finds a torn last row (the kill came mid-write): the complete rows are rewritten
atomically without it, so a row is never lost and never doubled. An exclusive ``flock`` keeps
two processes from appending to one file (it is released by the kernel when a process dies,
so a kill leaves no stale lock).
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from modelkit.atomic import atomic_write_text
from modelkit.csvcells import read_cell, safe_cell
from modelkit.errors import ModelkitError


class CsvSinkError(ModelkitError, RuntimeError):
    """The CSV cannot be continued (other columns, another writer); says which file and why."""


class ResumableCsv:
    """Append-only CSV with a header; ``done`` holds the first column's values already written."""

    def __init__(self, path: str | Path, fields: Sequence[str]):
        self.path = Path(path)
        self.fields = list(fields)
        self.done: set[str] = set()
        self.recovered_torn_row = False
        self._file: io.TextIOWrapper | None = None

    def __enter__(self) -> ResumableCsv:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", newline="", encoding="utf-8")  # noqa: SIM115 - kept open
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise CsvSinkError(
                f"{self.path}: another process is writing this file; give each one its own "
                "(with --shard, one CSV per shard)"
            ) from None
        self._file = f
        f.seek(0)
        text = f.read()
        if not text:
            self._write([self.fields])
        else:
            self._continue(text)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None

    def _continue(self, text: str) -> None:
        rows, torn = _complete_rows(text)
        if not rows or rows[0] != self.fields:
            raise CsvSinkError(
                f"{self.path}: its columns {rows[0] if rows else []} are not the ones this "
                f"command writes {self.fields} (another --top-k?); write to another file"
            )
        self.done = {read_cell(row[0]) for row in rows[1:] if row}
        if torn:
            # the kill came mid-row: keep every complete row, drop the torn tail, atomically
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(rows)
            atomic_write_text(self.path, buf.getvalue())
            self._reopen()
            self.recovered_torn_row = True

    def _reopen(self) -> None:
        """After the atomic rewrite the path names a new file: lock that one and append to it."""
        assert self._file is not None
        new = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - kept open
        fcntl.flock(new.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file.close()
        self._file = new

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write ``rows`` (dicts by field) and make them durable before returning."""
        rows = list(rows)
        self._write([[safe_cell(row.get(k, "")) for k in self.fields] for row in rows])
        self.done.update(str(row[self.fields[0]]) for row in rows)

    def _write(self, cells: list[list[Any]]) -> None:
        assert self._file is not None, "use ResumableCsv as a context manager"
        csv.writer(self._file, lineterminator="\n").writerows(cells)
        self._file.flush()
        os.fsync(self._file.fileno())


def _complete_rows(text: str) -> tuple[list[list[str]], bool]:
    """The rows a writer finished, and whether a torn last row followed them.

    Every finished row ends with a newline outside quotes, so the text is whole when it ends
    with one and parses; otherwise the last record is the torn one."""
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), strict=True):
            rows.append(row)
    except csv.Error:  # an unclosed quote at the end: the torn row never came out as a row
        return rows, True
    if text.endswith("\n"):
        return rows, False
    return rows[:-1], True
