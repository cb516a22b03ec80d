"""What a class name may be: plain text of a sane length, shown and used as a label everywhere;
and how any name is printed to a terminal.

Class names come from folder names, zips and checkpoints someone else made. The pages show them as
text (never markup), and loading refuses names that are not strings, are empty or huge, or hold
control characters, and lists that are absurdly long, so a shared model cannot smuggle anything
through its labels. Run, file and folder names cannot be refused like that (they are what is on
disk), so the command line prints every name through ``printable``.
"""

from __future__ import annotations

import re
from typing import Any

MAX_CLASSES = 100_000
MAX_CLASS_NAME = 255  # characters: the longest folder name most file systems allow
# One regex search per name, not a Python loop per character: the Runs page checks every class
# name of every run on each rerun (300k names for 1,000 runs of 300 classes).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What a terminal acts on instead of showing: C0 controls (ESC starts cursor moves, colours, title
# and clipboard writes: OSC 52), DEL, the C1 controls (U+009B is a one-character CSI), and the
# bidirectional marks and overrides that reorder what is shown.
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def class_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a class name, or None when it can."""
    if not isinstance(name, str):
        return f"a class name is {_kind(name)}, not text"
    if not name.strip() or len(name) > MAX_CLASS_NAME:
        return f"class name {name[:40]!r} is empty or longer than {MAX_CLASS_NAME} characters"
    if _CONTROL.search(name):
        return f"class name {name[:40]!r} contains control characters"
    return None


def classes_problem(classes: Any, where: str) -> str | None:
    """Why ``classes`` (read from ``where``) is not a usable list of class names, or None."""
    if not isinstance(classes, list) or not classes:
        return f"{where}: the class names are {_kind(classes)}, not a non-empty list"
    if len(classes) > MAX_CLASSES:
        return f"{where}: {len(classes)} classes, more than {MAX_CLASSES}"
    for name in classes:
        problem = class_name_problem(name)
        if problem:
            return f"{where}: {problem}"
    return None


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` safe to print on a terminal: every control character written as its escape
    (``\\x1b``, ``\\n``'s ``\\x0a`` included, so a name cannot forge a line either), and bytes
    of a file name that are not UTF-8 as ``\\xff``. A run, file or class name from someone
    else's folder, zip or journal would otherwise reach the terminal raw: an OSC 52 sequence in a
    run name wrote the clipboard of whoever listed the runs."""
    text = str(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")  # os.fsdecode's stand-ins for bad bytes
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")  # other lone surrogates
    return _UNSHOWABLE.sub(_escape, raw.decode("utf-8", "backslashreplace"))
