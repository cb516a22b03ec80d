"""Learning-rate range test: suggestion, divergence stop, weights restored, CLI and plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from modelkit.cli.main import main
from modelkit.models import registry as models
from modelkit.training.lr_finder import LRFinderResult, lr_range_test, suggest
from studio.search_figures import lr_figure


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = list(np.logspace(-6, 0, 61))
    x = np.log10(lrs)
    losses = list(2.0 - 1.5 / (1 + np.exp(-4 * (x + 3))) + np.where(x > -1, (x + 1) ** 2 * 5, 0))
    steepest, min_div10 = suggest(lrs, losses)
    assert 10**-3.3 < steepest < 10**-2.7  # the sigmoid falls fastest at 1e-3
    lowest = lrs[int(np.argmin(losses))]
    assert min_div10 == pytest.approx(lowest / 10)
    assert suggest([1e-3, 1e-2], [1.0, 0.5]) == (None, None)


def test_range_test_restores_the_model_and_stops_when_the_loss_diverges():
    torch.manual_seed(0)
    model = models.build_model("smallresnet", 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(8, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    model.eval()
    result = lr_range_test(model, "smallresnet", lambda: (x, y), start_lr=1e-3, end_lr=1e5,
                           steps=30, device=torch.device("cpu"))  # fmt: skip
    assert result.diverged and 3 <= len(result.lrs) < 30
    assert result.lrs == sorted(result.lrs) and result.lrs[0] == pytest.approx(1e-3)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not model.training
    assert result.suggestion is not None
    fig = lr_figure(result)
    assert [t.name for t in fig.data] == ["loss", "smoothed", "suggestion"]
    assert fig.layout.xaxis.type == "log"
    assert not lr_figure(LRFinderResult()).data


def test_cli_lr_find_on_tiny_data(image_dataset, tmp_path, capsys):
    plot = tmp_path / "lr.html"
    code = main(
        ["lr-find", str(image_dataset), "--weights", "none", "--image-size", "32",
         "--steps", "20",
         "--batch-size", "8", "--device", "cpu", "--precision", "fp32", "--json",
         "--plot", str(plot)]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert 3 <= len(out["lrs"]) <= 20
    assert out["suggestion"] and out["min_lr_div10"]
    assert "<html>" in plot.read_text()
