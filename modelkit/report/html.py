"""The building blocks of the report page: escaping, tables, sections and the document.

Class names, file names and log lines come from folders other people made, so every string
that reaches the page goes through ``esc`` here, and the page itself forbids scripts and every
outside resource (a Content-Security-Policy in its head): even a string that slipped through
could neither run nor fetch anything. The page has no script at all.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

# Nothing but the page's own inline styles and data: images may load.
CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'"
)

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1d2433;background:#f6f7f9;margin:0}
main{max-width:1100px;margin:0 auto;padding:24px}
header h1{margin:0 0 4px;font-size:24px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:16px 20px;margin:16px 0}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e6e9ee;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{font-weight:600;color:#47506a}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.scroll{max-height:420px;overflow:auto;border:1px solid #eef0f3;border-radius:4px;padding:0 6px}
.note{color:#5b6478}
.missing{color:#5b6478;font-style:italic}
.bad{color:#b3261e}
.figures{display:flex;flex-wrap:wrap;gap:16px}
.headline{display:flex;flex-wrap:wrap;gap:12px;margin:10px 0}
.metric{border:1px solid #dde1e7;border-radius:6px;padding:6px 12px;background:#fff}
.metric b{display:block;font-size:20px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{width:240px;font-size:12px}
.card img{width:116px;height:116px;object-fit:cover;border-radius:3px}
.thumbs{display:flex;flex-wrap:wrap;gap:6px}
.thumb{width:72px;font-size:10px;overflow-wrap:anywhere}
.thumb img{width:64px;height:64px;object-fit:cover;border-radius:3px;display:block}
code{font-size:12px}
svg text{font-family:system-ui,sans-serif}
"""


def esc(value: Any) -> str:
    """Text safe inside an element or a quoted attribute; file names that are not valid UTF-8
    (surrogate escapes) are shown with a replacement mark instead of failing."""
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return html.escape(text, quote=True)


def number(value: Any, digits: int = 3) -> str:
    """A number as a person reads it in a table; anything else as escaped text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return esc("" if value is None else value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return esc(value)
    if value != 0 and abs(value) < 10**-digits:
        return f"{value:.2e}"
    return f"{value:,.{digits}f}"


def percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "–"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    numeric: Sequence[bool] | None = None,
    scroll: bool = False,
) -> str:
    """Every cell is escaped (numbers formatted) here, so no caller can forget it; ``numeric``
    right-aligns columns."""
    numeric = list(numeric or [False] * len(headers))
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            right = numeric[i] if i < len(numeric) else False
            text = number(cell) if isinstance(cell, (int, float)) else esc(cell)
            cells.append(f'<td class="n">{text}</td>' if right else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{out}</div>' if scroll else out


def para(text: str, cls: str = "") -> str:
    """A paragraph of plain text (escaped)."""
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{esc(text)}</p>"


def missing(text: str) -> str:
    """The one line a section says when its part of the run does not exist."""
    return para(text, "missing")


def section(section_id: str, title: str, body: str) -> str:
    """A section with a stable id (tests and links find it by that) and a heading."""
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


def document(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """The whole page: one file, no script, no outside resource."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body><main><header><h1>{esc(title)}</h1>{para(subtitle, 'note')}</header>"
        f"{''.join(sections)}</main></body></html>\n"
    )
