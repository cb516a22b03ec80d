"""Figure builders: plain data in, a plotly Figure out.

Pure functions with no Streamlit in sight, so the app draws them and tests check their traces
headless. Every builder accepts empty input and returns an empty (but valid) figure.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

LABELS = {
    "train_loss": "train loss",
    "val_loss": "val loss",
    "train_acc": "train accuracy",
    "val_acc": "val accuracy",
    "val_top5": "val top-5",
    "lr": "learning rate",
    "images_per_second": "images / s",
    "epoch_seconds": "seconds / epoch",
}
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


def plotly_label(name: object) -> str:
    """A name (class, run, file) as literal text in a Plotly label, legend or hover template.

    Plotly renders a subset of HTML in labels (``<a href>`` is a live link, ``<b>``, ``<br>``) and
    fills ``%{...}`` in templates, so both are escaped; Plotly decodes the entities back to text."""
    return html.escape(str(name)).replace("%", "&#37;")


def _label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def _is_rate(key: str) -> bool:
    return key.endswith("_acc") or key.endswith("_top5")


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of one metric, skipping epochs where it is missing (no val split)."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            xs.append(int(row.get("epoch", i + 1)))
            ys.append(float(value))
    return xs, ys


def _line_layout(
    title: str,
    ytitle: str,
    rate: bool,
    height: int = 320,
    log_y: bool = False,
    xtitle: str = "epoch",
) -> dict[str, Any]:
    yaxis: dict[str, Any] = {"title": {"text": ytitle}}
    if rate:
        yaxis.update(tickformat=".0%", range=[0, 1.02])
    elif log_y:
        yaxis["type"] = "log"
    return {
        "title": {"text": title},
        "height": height,
        "margin": dict(MARGIN),
        "hovermode": "x unified",
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        "xaxis": {"title": {"text": xtitle}, "tickformat": "d"},
        "yaxis": yaxis,
        "template": _template(),
    }


@functools.cache
def _template() -> dict[str, Any]:
    return go.Figure().layout.template.to_plotly_json()


def _line_figure(traces: list[dict[str, Any]], layout: dict[str, Any]) -> go.Figure:
    """A figure from plain trace and layout dicts, without plotly's property validation.

    Validation costs ~20 ms a figure, mostly in ``update_*`` calls; the live view pays it on
    every redraw, in the server that is training. The dicts here are fixed, and a test checks
    that validating them changes nothing."""
    for trace in traces:
        trace.setdefault("type", "scatter")
    top = max((max(t["x"]) for t in traces if len(t["x"])), default=0)
    if top <= 10:  # plotly would put ticks at 0.5 steps, and "d" prints them as 0 1 1 2 2
        layout["xaxis"]["dtick"] = 1
    return go.Figure(data=traces, layout=layout, _validate=False)


def curves_figure(
    metrics_rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str] = ("train_loss", "val_loss"),
    title: str = "Loss",
    log_y: bool = False,
) -> go.Figure:
    """One line per metric key over the epochs; keys no row carries are left out.

    ``log_y`` puts losses on a log axis (a diverging run otherwise flattens the others)."""
    traces = []
    for key in keys:
        xs, ys = _series(metrics_rows, key)
        if xs:
            traces.append({"x": xs, "y": ys, "name": _label(key), "mode": "lines+markers"})
    rate = bool(keys) and all(_is_rate(k) for k in keys)
    ytitle = _label(keys[0]) if len(keys) == 1 else ("accuracy" if rate else "loss")
    fig = _line_figure(traces, _line_layout(title, ytitle, rate, log_y=log_y))
    return mark_phases(fig, metrics_rows)


def mark_phases(fig: go.Figure, metrics_rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Two-phase runs (rows with a ``phase`` key): a dashed line where fine-tuning starts."""
    head_only = [int(r.get("epoch", 0)) for r in metrics_rows if r.get("phase") == 1]
    if head_only and any(r.get("phase") == 2 for r in metrics_rows):
        fig.add_vline(
            x=max(head_only) + 0.5,
            line_dash="dash",
            line_color="grey",
            annotation_text="fine-tune all layers",
            annotation_position="top right",
        )
    return fig


def accuracy_figure(metrics_rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    return curves_figure(metrics_rows, ("train_acc", "val_acc", "val_top5"), title="Accuracy")


def compare_runs_figure(
    runs: Mapping[str, Sequence[Mapping[str, Any]]], metric: str, log_y: bool = False
) -> go.Figure:
    """One line per run for one metric, named by the run (legend below: run names are long)."""
    traces = []
    for name, rows in runs.items():
        xs, ys = _series(rows, metric)
        if xs:
            traces.append({"x": xs, "y": ys, "name": plotly_label(name), "mode": "lines+markers"})
    height = 300 + 22 * len(runs)
    layout = _line_layout(_label(metric), _label(metric), _is_rate(metric), height, log_y)
    layout["hovermode"] = "closest"
    layout["legend"] = {"orientation": "h", "yanchor": "top", "y": -0.25, "xanchor": "left", "x": 0}
    return _line_figure(traces, layout)


def normalise_rows(cm: Sequence[Sequence[float]]) -> list[list[float]]:
    """Each row divided by its total (the recall view); an empty row stays zero."""
    out = []
    for row in cm:
        total = float(sum(row))
        out.append([float(v) / total if total else 0.0 for v in row])
    return out


def confusion_figure(
    cm: Sequence[Sequence[int]], classes: Sequence[str], normalise: bool = False
) -> go.Figure:
    """Heatmap with true classes on y (first at the top) and predicted on x.

    Cells carry their count, or their share of the true class when ``normalise``. A second,
    invisible marker trace sits on the cell centres so a click selects a cell (plotly heatmaps
    cannot be selected themselves); its customdata is ``[true, predicted, count]``.
    """
    raw = [str(c) for c in classes]
    classes = [plotly_label(c) for c in raw]  # what the chart shows; raw names go in customdata
    counts = [[int(v) for v in row] for row in cm]
    shares = normalise_rows(counts)
    z = shares if normalise else counts
    text = [
        [f"{s:.0%}" if normalise else str(c) for c, s in zip(crow, srow)]
        for crow, srow in zip(counts, shares)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=classes,
            y=classes,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1 if normalise else None,
            hoverinfo="skip",
            showscale=False,
            name="confusion",
        )
    )
    cells = [(t, p) for t in range(len(classes)) for p in range(len(classes))]
    fig.add_trace(
        go.Scatter(
            x=[classes[p] for _, p in cells],
            y=[classes[t] for t, _ in cells],
            customdata=[[raw[t], raw[p], counts[t][p], classes[t], classes[p]] for t, p in cells],
            mode="markers",
            marker={"size": 28, "opacity": 0, "symbol": "square"},
            hovertemplate=(
                "true %{customdata[3]}<br>predicted %{customdata[4]}"
                "<br>images: %{customdata[2]}<extra></extra>"
            ),
            showlegend=False,
            name="cells",
        )
    )
    side = min(900, 160 + 44 * len(classes))
    fig.update_layout(
        height=side,
        margin=MARGIN,
        clickmode="event+select",
        dragmode=False,
        title="Confusion matrix" + (" (share of each true class)" if normalise else " (counts)"),
    )
    fig.update_xaxes(title="predicted", type="category", side="bottom", showgrid=False)
    fig.update_yaxes(title="true", type="category", autorange="reversed", showgrid=False)
    return fig


def topk_bar(labels: Sequence[str], probs: Sequence[float]) -> go.Figure:
    """Horizontal bars, best label on top, probabilities on a 0..1 axis."""
    fig = go.Figure(
        go.Bar(
            x=[float(p) for p in probs],
            y=[plotly_label(lab) for lab in labels],
            orientation="h",
            text=[f"{p:.1%}" for p in probs],
            textposition="auto",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=60 + 28 * max(1, len(labels)), margin={"l": 10, "r": 10, "t": 10, "b": 10}
    )
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(autorange="reversed", type="category")
    return fig


def smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction, as TensorBoard smooths scalars."""
    out, avg = [], 0.0
    for i, v in enumerate(values):
        avg = weight * avg + (1 - weight) * float(v)
        out.append(avg / (1 - weight ** (i + 1)))
    return out


def batch_loss_figure(points: Sequence[tuple[int, float]], smoothing: float = 0.9) -> go.Figure:
    """Per-batch training loss (faint) with its moving average on top.

    Arrays go in as numpy, which plotly sends as typed binary arrays instead of JSON lists."""
    steps = np.fromiter((s for s, _ in points), dtype=np.int64, count=len(points))
    losses = np.fromiter((v for _, v in points), dtype=np.float64, count=len(points))
    traces = []
    if len(points):
        traces = [
            {
                "x": steps,
                "y": losses,
                "name": "batch loss",
                "mode": "lines",
                "line": {"width": 1},
                "opacity": 0.35,
            },
            {
                "x": steps,
                "y": np.asarray(smooth(losses, smoothing)),
                "name": "smoothed",
                "mode": "lines",
            },
        ]
    layout = _line_layout("Training loss per batch", "loss", False, height=280, xtitle="step")
    return _line_figure(traces, layout)
