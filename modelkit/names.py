"""What a class name may be: plain text of a sane length, shown and used as a label everywhere.

Class names come from folder names, zips and checkpoints someone else made. The pages show them as
text (never markup), and loading refuses names that are not strings, are empty or huge, or hold
control characters, and lists that are absurdly long, so a shared model cannot smuggle anything
through its labels.
"""

from __future__ import annotations

import re
from typing import Any

MAX_CLASSES = 100_000
MAX_CLASS_NAME = 255  # characters: the longest folder name most file systems allow
# One regex search per name, not a Python loop per character: the Runs page checks every class
# name of every run on each rerun (300k names for 1,000 runs of 300 classes).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
