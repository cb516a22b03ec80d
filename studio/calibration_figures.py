"""Figures for calibration: the reliability diagram and the coverage-vs-accuracy curve.

Plain data in (the bins and curve of ``runs/<id>/calibration.json``), a plotly Figure out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from studio.figures import MARGIN


def reliability_figure(
    bins_before: Sequence[Mapping[str, float]], bins_after: Sequence[Mapping[str, float]]
) -> go.Figure:
    """Accuracy per confidence bin before and after temperature scaling, against the diagonal
    (a calibrated model's bars sit on it: when it says 80% it is right 80% of the time)."""
    fig = go.Figure()
    for name, bins, colour in (
        ("before", bins_before, "#EF553B"),
        ("after", bins_after, "#636EFA"),
    ):
        kept = [b for b in bins if b.get("count")]
        fig.add_trace(
            go.Scatter(
                x=[b["confidence"] for b in kept],
                y=[b["accuracy"] for b in kept],
                mode="lines+markers",
                name=f"{name} scaling",
                marker={"size": [4 + min(16, b["count"] ** 0.5) for b in kept], "color": colour},
                customdata=[b["count"] for b in kept],
                hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>%{customdata} images"
                "<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="calibrated",
            line={"dash": "dot", "color": "grey"},
        )
    )
    fig.update_layout(
        title="Reliability diagram",
        xaxis={"title": "confidence", "range": [0, 1.02]},
        yaxis={"title": "accuracy", "range": [0, 1.02]},
        margin=MARGIN,
        height=360,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def coverage_figure(
    curve: Mapping[str, Sequence[float]], threshold: float, target: float
) -> go.Figure:
    """Accuracy of the answered images against the share answered, one point per threshold,
    with the chosen threshold marked and the target accuracy as a line."""
    coverage, accuracy = list(curve.get("coverage", [])), list(curve.get("accuracy", []))
    thresholds = list(curve.get("threshold", []))
    fig = go.Figure(
        go.Scatter(
            x=coverage,
            y=accuracy,
            mode="lines",
            name="answered images",
            customdata=thresholds,
            hovertemplate="threshold %{customdata:.3f}<br>answers %{x:.1%}<br>accuracy %{y:.1%}"
            "<extra></extra>",
        )
    )
    answered = [i for i, t in enumerate(thresholds) if t >= threshold]
    if answered:  # above every confidence nothing is answered: no point of the curve to mark
        i = answered[-1]
        fig.add_trace(
            go.Scatter(
                x=[coverage[i]],
                y=[accuracy[i]],
                mode="markers",
                name=f"threshold {threshold:.3f}",
                marker={"size": 12, "symbol": "x", "color": "#EF553B"},
            )
        )
    fig.add_hline(y=target, line={"dash": "dot", "color": "grey"}, annotation_text="target")
    fig.update_layout(
        title="Coverage vs accuracy",
        xaxis={"title": "share of images answered", "range": [0, 1.02], "tickformat": ".0%"},
        yaxis={"title": "accuracy of the answered", "tickformat": ".0%"},
        margin=MARGIN,
        height=360,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
