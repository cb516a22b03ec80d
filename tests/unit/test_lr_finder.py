"""Learning-rate range test: suggestion, divergence stop, weights restored, CLI and plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modelkit.cli.main import main
from modelkit.training.callbacks import Callback
from modelkit.training.loop import Trainer
from modelkit.training.lr_finder import LRFinder, LRFinderResult, lr_find, suggest
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


def test_range_test_restores_the_model_and_stops_when_the_loss_diverges(make_config):
    """The finder is a callback over the Trainer's loop: it sweeps the rate up, stops when the
    loss diverges, puts the weights back, and leaves no run folder behind."""
    cfg = make_config(arch="smallresnet", epochs=30)  # the finder ends the run
    seen: dict[str, dict] = {}

    class Probe(Callback):  # runs after the finder: sees the weights it starts from
        def on_fit_start(self, trainer):
            seen["before"] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

        def on_fit_end(self, trainer, reason):
            seen["after"] = trainer.model.state_dict()

    finder = LRFinder(start_lr=1e-3, end_lr=1e5, steps=30)
    Trainer(cfg, callbacks=[finder, Probe()], record=False).fit()
    result = finder.result
    assert result.diverged and 3 <= len(result.lrs) < 30
    assert result.lrs == sorted(result.lrs) and result.lrs[0] == pytest.approx(1e-3)
    assert all(torch.equal(v, seen["before"][k]) for k, v in seen["after"].items())
    assert result.suggestion is not None
    assert not Path(cfg.runs_dir).exists() or not any(Path(cfg.runs_dir).iterdir())
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


def test_lr_find_adds_no_run_to_the_runs_folder(make_config):
    cfg = make_config(arch="smallresnet", head_epochs=1, epochs=3)
    result = lr_find(cfg, start_lr=1e-4, end_lr=1.0, steps=12)
    assert 3 <= len(result.lrs) <= 12 and result.lrs[0] == pytest.approx(1e-4)
    assert not Path(cfg.runs_dir).exists() or not any(Path(cfg.runs_dir).iterdir())
