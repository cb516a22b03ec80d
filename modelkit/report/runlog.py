"""The run's log read back as lines: what the run said while it trained (auto's reasons, files
it skipped, the time budget's plan), for the report's data card and settings sections."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from modelkit.runs.folder import RunFolder

_LINE = re.compile(r"^(\S+) \[(\w+)\] (.*)$")
SKIPPED = "skipped "  # the trainer's "skipped PATH: REASON" warning for a file that won't decode
MAX_LINES = 5000  # a log is a few dozen lines; a huge one is read no further than this


@dataclass(frozen=True)
class LogLine:
    time: str
    level: str
    text: str


def read_log(folder: RunFolder) -> list[LogLine]:
    """The log's lines (a line that is not in the recorder's format is kept as plain text)."""
    try:
        with open(folder.log, encoding="utf-8", errors="replace") as f:
            raw = [line.rstrip("\n") for _, line in zip(range(MAX_LINES), f)]
    except OSError:
        return []
    out = []
    for line in raw:
        m = _LINE.match(line)
        out.append(LogLine(*m.groups()) if m else LogLine("", "info", line))
    return out


def skipped_files(lines: Iterable[LogLine], known: Iterable[str]) -> list[tuple[str, str]]:
    """(path, reason) of each file the run skipped. The path is matched against the run's own
    file list, since a file name may itself contain ": "."""
    paths = set(known)
    out = []
    for line in lines:
        if line.level != "warning" or not line.text.startswith(SKIPPED):
            continue
        rest = line.text[len(SKIPPED) :]
        cut = [i for i in range(len(rest)) if rest.startswith(": ", i) and rest[:i] in paths]
        i = cut[0] if cut else rest.rfind(": ")
        if i > 0:
            out.append((rest[:i], rest[i + 2 :]))
    return out
