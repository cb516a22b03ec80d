"""studio.figures: each builder puts the right data in the right traces."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from studio import figures as plots

ROWS = [
    {"epoch": 1, "train_loss": 2.0, "val_loss": 2.5, "train_acc": 0.3, "val_acc": 0.25},
    {"epoch": 2, "train_loss": 1.5, "val_loss": 1.8, "train_acc": 0.5, "val_acc": 0.45},
    {"epoch": 3, "train_loss": 1.0, "train_acc": 0.7},  # no val this epoch
]


def by_name(fig: go.Figure) -> dict[str, go.BaseTraceType]:
    return {t.name: t for t in fig.data}


def test_curves_figure_one_line_per_key_skipping_missing_values():
    fig = plots.curves_figure(ROWS)
    traces = by_name(fig)
    assert set(traces) == {"train loss", "val loss"}
    assert list(traces["train loss"].x) == [1, 2, 3]
    assert list(traces["train loss"].y) == [2.0, 1.5, 1.0]
    assert list(traces["val loss"].x) == [1, 2]
    assert list(traces["val loss"].y) == [2.5, 1.8]


def test_curves_figure_leaves_out_keys_no_row_has_and_accepts_empty_input():
    fig = plots.curves_figure(ROWS, keys=("train_loss", "val_top5"))
    assert [t.name for t in fig.data] == ["train loss"]
    assert len(plots.curves_figure([]).data) == 0


def test_accuracy_figure_uses_a_percent_axis():
    fig = plots.accuracy_figure(ROWS)
    traces = by_name(fig)
    assert set(traces) == {"train accuracy", "val accuracy"}
    assert list(traces["val accuracy"].y) == [0.25, 0.45]
    assert fig.layout.yaxis.tickformat == ".0%"


def test_compare_runs_figure_one_line_per_run():
    runs = {"run-a": ROWS, "run-b": [{"epoch": 1, "val_acc": 0.9}], "run-c": []}
    fig = plots.compare_runs_figure(runs, "val_acc")
    traces = by_name(fig)
    assert set(traces) == {"run-a", "run-b"}  # a run without the metric draws nothing
    assert list(traces["run-a"].y) == [0.25, 0.45]
    assert list(traces["run-b"].x) == [1]


@pytest.mark.parametrize("normalise", [False, True])
def test_confusion_figure_true_on_y_predicted_on_x(normalise):
    cm = [[3, 1, 0], [0, 2, 2], [0, 0, 0]]
    classes = ["cat", "dog", "fox"]
    fig = plots.confusion_figure(cm, classes, normalise)
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert list(heat.x) == classes and list(heat.y) == classes
    assert fig.layout.yaxis.autorange == "reversed"  # first class on top, like a table
    if normalise:
        assert list(heat.z[0]) == [0.75, 0.25, 0.0]
        assert list(heat.z[1]) == [0.0, 0.5, 0.5]
        assert list(heat.z[2]) == [0.0, 0.0, 0.0]  # an empty row does not divide by zero
        assert heat.text[0][0] == "75%"
    else:
        assert list(heat.z[1]) == [0, 2, 2]
        assert heat.text[0][1] == "1"


def test_confusion_figure_cells_are_selectable_with_their_classes():
    cm = [[3, 1], [4, 2]]
    fig = plots.confusion_figure(cm, ["cat", "dog"])
    cells = fig.data[1]
    assert isinstance(cells, go.Scatter)
    assert len(cells.x) == 4
    # cell (true dog, predicted cat) carries its classes and count
    i = [tuple(c[:2]) for c in cells.customdata].index(("dog", "cat"))
    assert cells.x[i] == "cat" and cells.y[i] == "dog" and cells.customdata[i][2] == 4


def test_confusion_figure_keeps_numeric_class_names_categorical():
    fig = plots.confusion_figure([[1, 0], [0, 1]], [0, 1])
    assert list(fig.data[0].x) == ["0", "1"]
    assert fig.layout.xaxis.type == "category"


def test_topk_bar_is_horizontal_best_first():
    fig = plots.topk_bar(["dog", "cat", "fox"], [0.7, 0.2, 0.1])
    bar = fig.data[0]
    assert isinstance(bar, go.Bar) and bar.orientation == "h"
    assert list(bar.y) == ["dog", "cat", "fox"]
    assert list(bar.x) == [0.7, 0.2, 0.1]
    assert list(bar.text) == ["70.0%", "20.0%", "10.0%"]
    assert fig.layout.yaxis.autorange == "reversed"
    assert tuple(fig.layout.xaxis.range) == (0, 1)


def test_batch_loss_figure_raw_and_smoothed():
    points = [(1, 2.0), (2, 1.0), (3, 1.0)]
    fig = plots.batch_loss_figure(points)
    traces = by_name(fig)
    assert list(traces["batch loss"].x) == [1, 2, 3]
    assert list(traces["batch loss"].y) == [2.0, 1.0, 1.0]
    smoothed = list(traces["smoothed"].y)
    assert smoothed[0] == pytest.approx(2.0)  # bias-corrected: starts at the first value
    assert 1.0 < smoothed[-1] < 2.0
    assert len(plots.batch_loss_figure([]).data) == 0


def test_smooth_of_a_constant_is_that_constant():
    assert plots.smooth([3.0] * 5) == pytest.approx([3.0] * 5)


def test_log_scale_applies_to_losses_not_rates():
    assert plots.curves_figure(ROWS, log_y=True).layout.yaxis.type == "log"
    assert plots.compare_runs_figure({"a": ROWS}, "val_loss", log_y=True).layout.yaxis.type == "log"
    assert plots.compare_runs_figure({"a": ROWS}, "val_acc", log_y=True).layout.yaxis.type != "log"


@pytest.mark.parametrize(
    "build",
    [
        lambda: plots.curves_figure(ROWS, log_y=True),
        lambda: plots.accuracy_figure([{**r, "phase": 1 + (r["epoch"] > 1)} for r in ROWS]),
        lambda: plots.compare_runs_figure({"run-a": ROWS, "run-b": ROWS[:1]}, "val_acc"),
        lambda: plots.batch_loss_figure([(1, 2.0), (2, 1.0), (3, 1.5)]),
        lambda: plots.batch_loss_figure([]),
    ],
)
def test_line_figures_built_without_validation_are_what_plotly_validates(build):
    """The line charts skip plotly's validation for speed: the browser must get the same JSON
    (default template included) as from a validated figure of the same dicts."""
    fig = build()
    validated = go.Figure(fig.to_dict())
    assert json.loads(pio.to_json(fig, validate=False)) == json.loads(pio.to_json(validated))
    assert fig.layout.template.layout.colorway  # the default look, not a bare figure


def test_a_short_run_gets_one_tick_per_epoch_and_a_long_one_plotly_s_own():
    """Ticks between whole epochs printed with "d" read 0 1 1 2 2 under a one-epoch run."""
    assert plots.curves_figure(ROWS[:1]).layout.xaxis.dtick == 1
    assert plots.batch_loss_figure([(1, 2.0), (2, 1.0)]).layout.xaxis.dtick == 1
    many = [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, 41)]
    assert plots.curves_figure(many).layout.xaxis.dtick is None
