"""Figures of the search tools (LR finder, Optuna study, embeddings): plain data in, a plotly
Figure out, so the pages and ``modelkit lr-find --plot`` draw them and the engine needs no plotly.
The study's figures speak as its results table does (modelkit.tune.results), not as Optuna.
"""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import plotly.graph_objects as go

from modelkit.evaluation.embeddings import Embeddings
from modelkit.training.lr_finder import LRFinderResult
from modelkit.tune.results import setting_label
from modelkit.tune.search import completed
from studio.figures import plotly_label


def lr_figure(result: LRFinderResult) -> go.Figure:
    """Smoothed loss against the learning rate (log axis), the raw loss faint, the suggestion
    marked; an empty (valid) figure for an empty result."""
    fig = go.Figure()
    if result.lrs:
        fig.add_trace(
            go.Scatter(
                x=result.lrs, y=result.raw_losses, name="loss", mode="lines",
                line={"width": 1}, opacity=0.35,
            )
        )  # fmt: skip
        fig.add_trace(go.Scatter(x=result.lrs, y=result.losses, name="smoothed", mode="lines"))
    if result.suggestion:
        i = min(range(len(result.lrs)), key=lambda k: abs(result.lrs[k] - result.suggestion))
        fig.add_trace(
            go.Scatter(
                x=[result.suggestion], y=[result.losses[i]], mode="markers", name="suggestion",
                marker={"size": 12, "symbol": "x"},
            )
        )  # fmt: skip
    fig.update_layout(
        title="Learning-rate finder", height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10}
    )
    fig.update_xaxes(type="log", title="learning rate")
    fig.update_yaxes(title="loss")
    return fig


def history_figure(st: optuna.Study) -> go.Figure:
    """Each finished trial's validation accuracy and the best so far (Optuna's optimisation
    history, in the table's words); an empty figure before any finished trial."""
    if not completed(st):
        return go.Figure(layout={"title": "Validation accuracy by trial (none finished yet)"})
    fig = optuna.visualization.plot_optimization_history(st)
    names = {"Objective Value": "finished trial", "Best Value": "best so far"}
    for trace in fig.data:
        trace.name = names.get(trace.name, trace.name)
    fig.update_layout(title="Validation accuracy by trial")
    fig.update_xaxes(title="trial")
    fig.update_yaxes(title="validation accuracy")
    return fig


def importance_figure(st: optuna.Study) -> go.Figure | None:
    """How much each searched setting explains the differences in validation accuracy, by the
    Train form's labels; None with fewer than 2 finished trials (or when they cannot be told
    apart, e.g. every trial drew the same values)."""
    if completed(st) < 2:
        return None
    try:
        with warnings.catch_warnings():  # few trials: "importances will be equal" is expected
            warnings.simplefilter("ignore", UserWarning)
            fig = optuna.visualization.plot_param_importances(st)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None
    for trace in fig.data:
        trace.y = [setting_label(name) for name in trace.y]
        trace.hovertemplate = "%{y}: %{x:.2f}<extra></extra>"
        trace.name = "importance"
    fig.update_layout(title="Which setting mattered most")
    fig.update_xaxes(title="share of the differences in validation accuracy")
    fig.update_yaxes(title="")
    return fig


def projection_figure(coords: np.ndarray, emb: Embeddings, title: str = "") -> go.Figure:
    """Scatter of 2-D coordinates, one trace per class, hover showing the image's file name."""
    fig = go.Figure()
    names = emb.names
    for c, cls in enumerate(emb.classes):
        idx = np.flatnonzero(emb.labels == c)
        if len(idx) == 0:
            continue
        fig.add_trace(
            go.Scatter(
                x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=plotly_label(cls),
                text=[plotly_label(names[i]) for i in idx],
                hovertemplate="%{text}<br>" + plotly_label(cls) + "<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(title=title, height=480, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
