"""Numbers as a person reads them, shared by the pages."""

from __future__ import annotations


def duration_text(seconds: float | None) -> str:
    """``42 s``, ``3 min 07 s``, ``2 h 05 min``; empty when unknown."""
    if seconds is None or seconds < 0:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
