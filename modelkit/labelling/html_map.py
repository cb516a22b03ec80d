"""The map of a labelling folder as one HTML file that opens offline: an inline SVG with a dot
per image (coloured by class, grey while unlabelled, hollow when the head has a guess) and the
image's thumbnail and name in a corner panel on hover.

Nothing is fetched from anywhere (no CDN, no web font); thumbnails are inline PNG data URIs. File
and class names come from an untrusted folder, so every one is escaped for the attribute it sits
in, and the few lines of script read them with ``getAttribute`` and write them with
``textContent``, never as markup.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from modelkit.atomic import atomic_write_text
from modelkit.labelling.folder import shown

SIZE = 900  # px of the square drawing area
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
)  # fmt: skip
UNLABELLED = "#b0b0b0"
SCRIPT = """
const panel = document.getElementById('panel'), img = panel.querySelector('img');
const cap = panel.querySelector('p');
document.querySelectorAll('circle[data-name]').forEach(c => c.addEventListener('mouseenter', () => {
  img.src = c.getAttribute('data-thumb'); cap.textContent = c.getAttribute('data-name');
}));
"""


def _png(thumb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(thumb, dtype=np.uint8), "RGB").save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render(
    coords: np.ndarray,
    names: list[str],
    thumbs: np.ndarray,
    labels: list[str | None],
    title: str,
    guesses: list[str | None] | None = None,
) -> str:
    """The page: one dot per row of ``coords`` (in [0, 1]), with its name, thumbnail and class
    (``labels``, None for unlabelled; ``guesses`` the head's class for those)."""
    classes = sorted({c for c in labels if c is not None})
    colour = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
    guesses = guesses or [None] * len(names)
    dots = []
    for (x, y), name, thumb, cls, guess in zip(coords, names, thumbs, labels, guesses):
        fill = colour.get(cls, UNLABELLED)
        stroke = colour.get(guess, "none") if cls is None else "none"
        what = cls if cls is not None else (f"unlabelled, guess {guess}" if guess else "unlabelled")
        tip = html.escape(f"{shown(name)} ({shown(what)})", quote=True)
        dots.append(
            f'<circle cx="{20 + x * (SIZE - 40):.1f}" cy="{20 + y * (SIZE - 40):.1f}" r="5" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="2" data-name="{tip}" '
            f'data-thumb="{_png(thumb)}"><title>{tip}</title></circle>'
        )
    legend = "".join(
        f'<li><span style="background:{colour[c]}"></span>{html.escape(shown(c))}</li>'
        for c in classes
    )
    legend += f'<li><span style="background:{UNLABELLED}"></span>unlabelled</li>'
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(shown(title))}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>body{{font-family:sans-serif;margin:16px}}#panel{{position:fixed;right:16px;top:16px;
width:160px;background:#fff;border:1px solid #ccc;padding:8px}}#panel img{{width:144px;
height:144px;image-rendering:pixelated}}#panel p{{word-break:break-all;font-size:12px}}
ul{{list-style:none;padding:0}}li span{{display:inline-block;width:12px;height:12px;
margin-right:6px}}</style></head><body>
<h1>{html.escape(shown(title))}</h1><ul>{legend}</ul>
<div id="panel"><img alt=""><p>hover over a dot</p></div>
<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" \
style="border:1px solid #ddd">{"".join(dots)}</svg>
<script>{SCRIPT}</script></body></html>
"""


def write_map(labeller, out: str | os.PathLike, method: str = "tsne") -> Path:
    """Write ``labeller``'s folder as a map to ``out`` (atomically): every image that decodes,
    labelled ones in their class colour, the others grey with the head's guess as a ring."""
    table = labeller.table()
    where = labeller.folder.label_of()
    guess = [None] * len(table.paths)
    rows = {p: i for i, p in enumerate(table.paths)}
    suggestions = labeller.suggest(0)
    for path, cls, _conf in suggestions.proposals:
        guess[rows[path]] = cls
    root = labeller.root
    names = [os.path.relpath(p, root) for p in table.paths]
    labels = [where.get(p) for p in table.paths]
    page = render(labeller.coords(method), names, table.thumbs, labels, root, guess)
    atomic_write_text(out, page)
    return Path(out)
