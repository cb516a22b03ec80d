"""The Label page's figures: the map of the folder (a dot per image, coloured by class, grey
while unlabelled) and the estimated accuracy against labels a class.

Every name drawn comes from an untrusted folder and goes through ``plotly_label``. Each dot
carries its table row as ``customdata``, which is how a box or lasso selection names images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from modelkit.labelling.curve import CurvePoint
from studio.figures import MARGIN, plotly_label

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")  # fmt: skip
UNLABELLED = "unlabelled"
GL_FROM = 5000  # points from which the map draws with WebGL (SVG slows down past a few thousand)


def map_figure(
    coords: np.ndarray,
    names: Sequence[str],
    groups: Sequence[str],
    classes: Sequence[str],
    height: int = 520,
) -> go.Figure:
    """One trace per class (in ``classes`` order), then the unlabelled and the not-sure images;
    ``groups[i]`` is row i's class, ``UNLABELLED`` or ``"not sure"``. Drag draws a box."""
    kind = go.Scattergl if len(coords) >= GL_FROM else go.Scatter
    fig = go.Figure()
    order = [*classes, UNLABELLED, "not sure"]
    colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(classes)}
    colours[UNLABELLED], colours["not sure"] = "#b0b0b0", "#e0c080"
    groups_arr = np.asarray(groups, dtype=object)
    for group in order:
        rows = np.flatnonzero(groups_arr == group)
        if not len(rows):
            continue
        label = plotly_label(group)
        fig.add_trace(
            kind(
                x=coords[rows, 0], y=coords[rows, 1], mode="markers", name=label,
                customdata=rows.tolist(), text=[plotly_label(names[r]) for r in rows],
                hovertemplate="%{text}<br>" + label + "<extra></extra>",
                marker={"size": 9 if group == UNLABELLED else 11, "color": colours[group],
                        "line": {"width": 0.5, "color": "white"}},
            )
        )  # fmt: skip
    fig.update_layout(
        height=height, margin=MARGIN, dragmode="select", clickmode="event+select",
        legend={"orientation": "h", "y": -0.05}, uirevision="label-map",
        xaxis={"visible": False}, yaxis={"visible": False},
    )  # fmt: skip
    return fig


def curve_figure(points: Sequence[CurvePoint]) -> go.Figure:
    """Estimated accuracy against labels a class (held out from the labels given)."""
    fig = go.Figure(
        go.Scatter(
            x=[p.per_class for p in points], y=[p.accuracy for p in points],
            mode="lines+markers", customdata=[p.held_out for p in points],
            hovertemplate="%{x} labels a class: %{y:.1%} of %{customdata} held-out labels"
            "<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        height=260, margin=MARGIN, title="Estimated accuracy against labels a class",
        xaxis={"title": "labels a class", "type": "log"},
        yaxis={"title": "accuracy", "range": [0, 1.02], "tickformat": ".0%"},
    )  # fmt: skip
    return fig
