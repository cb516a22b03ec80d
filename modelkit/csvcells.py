"""CSV cells that a spreadsheet will not run: names are data, never formulas.

Exports carry file and class names other people chose. A cell that starts with ``=``, ``+``,
``-``, ``@`` (or a tab or carriage return) is a formula to Excel, LibreOffice and Google Sheets, so
``safe_cell`` puts a ``'`` in front of it, the usual neutraliser, which spreadsheets show as text.
A cell that already starts with ``'`` gets one more, so ``read_cell`` gives back the exact name
when modelkit reads its own files. Numbers are never touched.
"""

from __future__ import annotations

from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")


def safe_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would treat as a formula."""
    if isinstance(value, str) and value.startswith(TRIGGERS):
        return "'" + value
    return value


def read_cell(value: str) -> str:
    """The text ``safe_cell`` was given, from the cell it wrote."""
    if value.startswith("'") and value[1:].startswith(TRIGGERS):
        return value[1:]
    return value
