"""The report's charts as inline SVG, drawn from the numbers with no plotting library.

modelkit stays free of plotly and matplotlib, and a chart made of a few hundred SVG elements
opens instantly in any browser, offline, and prints sharp. Every label is escaped: class names
are user input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from modelkit.report.html import esc

COLOURS = ("#2f6fdf", "#e0702c", "#2c9b55", "#b03aa8", "#7a6a2a", "#d33a3a")
FONT = 11
LOG_SPAN = 100


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round numbers spanning [low, high], as axis labels."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    out, v = [], first
    while v <= high + step * 1e-6:
        out.append(round(v, 10))
        v += step
    return out


def _label(v: float) -> str:
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.0e}"


def line_chart(
    series: dict[str, list[tuple[float, float]]],
    title: str,
    x_label: str = "epoch",
    y_range: tuple[float, float] | None = None,
    percent: bool = False,
    log_y: bool = False,
    width: int = 500,
    height: int = 260,
) -> str:
    """Lines of (x, y) points with axes, ticks and a legend; empty series are left out.
    ``log_y``: a log scale when the values span more than a factor of LOG_SPAN (a loss that
    spiked early would otherwise flatten the rest of the curve)."""
    series = {
        k: [(x, y) for x, y in v if math.isfinite(x) and math.isfinite(y)]
        for k, v in series.items()
    }
    series = {k: v for k, v in series.items() if v}
    ys = [y for pts in series.values() for _, y in pts]
    log_y = log_y and bool(ys) and min(ys) > 0 and max(ys) / min(ys) > LOG_SPAN
    if log_y:
        series = {k: [(x, math.log10(y)) for x, y in v] for k, v in series.items()}
        title += " (log scale)"
    left, right, top, bottom = 48, 12, 28, 36
    pw, ph = width - left - right, height - top - bottom
    parts = [f'<text x="{left}" y="16" font-size="13" font-weight="600">{esc(title)}</text>']
    if not series:
        parts.append(f'<text x="{left}" y="{top + ph / 2}" font-size="{FONT}">no data</text>')
        return _svg(width, height, parts, title)
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = y_range or (min(ys), max(ys))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (min(max(y, y0), y1) - y0) / (y1 - y0) * ph

    decades = [float(k) for k in range(math.ceil(y0), math.floor(y1) + 1)]
    for t in decades if log_y and len(decades) >= 2 else _ticks(y0, y1):
        text = f"{t:.0%}" if percent else _label(10**t if log_y else t)
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
            'stroke="#e6e9ee"/>'
            f'<text x="{left - 4}" y="{py(t) + 4:.1f}" font-size="{FONT}" '
            f'text-anchor="end">{text}</text>'
        )
    for t in _ticks(x0, x1, 6):
        parts.append(
            f'<text x="{px(t):.1f}" y="{top + ph + 14}" font-size="{FONT}" '
            f'text-anchor="middle">{_label(t)}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 4}" font-size="{FONT}" '
        f'text-anchor="middle">{esc(x_label)}</text>'
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#b8bfcc"/>'
    )
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.8">'
            f"<title>{esc(name)}</title></polyline>"
        )
        if len(pts) == 1:
            parts.append(
                f'<circle cx="{px(pts[0][0]):.1f}" cy="{py(pts[0][1]):.1f}" r="3" fill="{colour}"/>'
            )
        lx = left + 8 + i * 120
        parts.append(
            f'<rect x="{lx}" y="{top + 6}" width="10" height="3" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{top + 11}" font-size="{FONT}">{esc(name)}</text>'
        )
    return _svg(width, height, parts, title)


def _blue(share: float) -> str:
    """White (0) to dark blue (1): the shade of a confusion-matrix cell."""
    share = min(max(share, 0.0), 1.0)
    r, g, b = (int(255 + (t - 255) * share) for t in (24, 78, 160))
    return f"#{r:02x}{g:02x}{b:02x}"


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """True classes down, predictions across; each cell shaded by its share of the true class.
    Only non-empty cells are drawn (a 100-class matrix is mostly empty), each with a tooltip."""
    n = len(classes)
    cell = max(5.0, min(28.0, 720.0 / max(n, 1)))
    font = max(4.0, min(FONT, cell * 0.8))
    names = [c if len(c) <= 22 else c[:21] + "…" for c in classes]
    margin = min(170.0, 12 + font * 0.6 * max((len(c) for c in names), default=4))
    size = margin + cell * n
    width, height = size + 10, size + 10
    parts = [
        f'<rect x="{margin}" y="{margin}" width="{cell * n}" height="{cell * n}" '
        'fill="#fafbfc" stroke="#b8bfcc"/>'
    ]
    for i, name in enumerate(names):
        y = margin + cell * (i + 0.5) + font * 0.35
        x = margin + cell * (i + 0.5)
        parts.append(
            f'<text x="{margin - 4}" y="{y:.1f}" font-size="{font:.1f}" text-anchor="end">'
            f"{esc(name)}</text>"
            f'<text transform="translate({x + font * 0.35:.1f},{margin - 4}) rotate(-90)" '
            f'font-size="{font:.1f}">{esc(name)}</text>'
        )
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, count in enumerate(row):
            if not count:
                continue
            share = count / total
            tip = f"{classes[i]} → {classes[j]}: {count} ({share:.0%} of {classes[i]})"
            parts.append(
                f'<rect x="{margin + j * cell:.1f}" y="{margin + i * cell:.1f}" '
                f'width="{cell:.1f}" height="{cell:.1f}" fill="{_blue(share)}" '
                f'stroke="{"#2c9b55" if i == j else "#d33a3a"}" stroke-width="0.4">'
                f"<title>{esc(tip)}</title></rect>"
            )
            if cell >= 18:
                colour = "#fff" if share > 0.55 else "#1d2433"
                parts.append(
                    f'<text x="{margin + (j + 0.5) * cell:.1f}" '
                    f'y="{margin + (i + 0.5) * cell + font * 0.35:.1f}" font-size="{font:.1f}" '
                    f'text-anchor="middle" fill="{colour}">{count}</text>'
                )
    return _svg(width, height, parts, "Confusion matrix")


def reliability_diagram(
    before: Sequence[dict], after: Sequence[dict], width: int = 360, height: int = 300
) -> str:
    """Accuracy against confidence per bin, before (outline) and after (filled) temperature
    scaling; the diagonal is perfect calibration. Empty bins are left out."""
    left, right, top, bottom = 44, 12, 28, 40
    pw, ph = width - left - right, height - top - bottom
    parts = [
        '<text x="44" y="16" font-size="13" font-weight="600">Reliability</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#b8bfcc"/>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top}" stroke="#9aa3b2" '
        'stroke-dasharray="4 3"/>',
    ]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<text x="{left - 4}" y="{top + ph - t * ph + 4:.1f}" font-size="{FONT}" '
            f'text-anchor="end">{t:.0%}</text>'
            f'<text x="{left + t * pw:.1f}" y="{top + ph + 14}" font-size="{FONT}" '
            f'text-anchor="middle">{t:.0%}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" font-size="{FONT}" text-anchor="middle">'
        "confidence (accuracy up)</text>"
    )
    for bins, filled in ((after, True), (before, False)):
        for b in bins:
            if not b.get("count"):
                continue
            x = left + float(b["low"]) * pw
            w = (float(b["high"]) - float(b["low"])) * pw
            h = float(b["accuracy"]) * ph
            style = (
                'fill="#2f6fdf" fill-opacity="0.55"' if filled else 'fill="none" stroke="#e0702c"'
            )
            which = "after" if filled else "before"
            tip = (
                f"{which}: {b['count']} images at {float(b['confidence']):.0%} confidence, "
                f"{float(b['accuracy']):.0%} right"
            )
            parts.append(
                f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
                f"{style}><title>{esc(tip)}</title></rect>"
            )
    parts.append(
        f'<rect x="{left + 6}" y="{top + 6}" width="10" height="10" fill="#2f6fdf" '
        'fill-opacity="0.55"/>'
        f'<text x="{left + 20}" y="{top + 15}" font-size="{FONT}">after scaling</text>'
        f'<rect x="{left + 106}" y="{top + 6}" width="10" height="10" fill="none" '
        'stroke="#e0702c"/>'
        f'<text x="{left + 120}" y="{top + 15}" font-size="{FONT}">before</text>'
    )
    return _svg(width, height, parts, "Reliability diagram")


def _svg(width: float, height: float, parts: list[str], label: str) -> str:
    return (
        f'<svg width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{esc(label)}">'
        f"{''.join(parts)}</svg>"
    )
