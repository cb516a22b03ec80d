"""A time budget counts the cached passes still to compute: a head-only run whose next
augmentation pass would take most of what is left trains on the passes it has (and says so)
instead of stopping after one epoch; one whose passes fit computes them and ends on time. The
clock is a fake one: a pass costs what the test says, so nothing depends on how busy the
machine is."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from modelkit.runs.folder import RunFolder
from modelkit.training import features, loop, setup
from modelkit.training.callbacks import time_budget
from modelkit.training.callbacks.base import Callback
from modelkit.training.features import CachedFeatures
from modelkit.training.loop import Trainer

HEAD_ONLY = dict(freeze_backbone=True, feature_cache=True, hflip=True, feature_passes=2)
PASS_COST = 10.0  # seconds a training pass of the head's features takes on the fake clock
BATCH_COST = 0.05


class PassClock(Callback):
    """Moves the fake clock: a second of decoding, each batch, each training pass computed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.t, self.passes = 0.0, 0
        fake = SimpleNamespace(perf_counter=lambda: self.t)
        for module in (time_budget, loop, features):
            monkeypatch.setattr(module, "time", fake)
        compute = setup.backbone_features

        def timed(*args, **kwargs):
            if kwargs.get("view", args[9] if len(args) > 9 else None) is not None:
                self.t += PASS_COST  # a training pass (the evaluation splits have no view)
                self.passes += 1
            return compute(*args, **kwargs)

        monkeypatch.setattr(setup, "backbone_features", timed)

    def setup(self, trainer) -> None:
        self.t += 1.0

    def before_batch(self, trainer, batch) -> None:
        self.t += BATCH_COST


def _run(make_config, monkeypatch, budget: float):
    clock = PassClock(monkeypatch)
    cfg = make_config(epochs=60, time_budget=budget, **HEAD_ONLY)
    trainer = Trainer(cfg, callbacks=[clock])
    result = trainer.fit()
    log = RunFolder(result.run_dir).log.read_text(encoding="utf-8")
    return trainer, result, clock, log


def test_a_pass_that_would_leave_few_epochs_is_not_computed_and_the_run_uses_its_budget(
    make_config, monkeypatch
):
    budget = 16.0  # pass 0 ends at 11 s: pass 1 (10 s) would leave no epoch after it
    trainer, result, clock, log = _run(make_config, monkeypatch, budget)
    assert "training on the 1 cached pass computed, not 2" in log, log
    assert clock.passes == 1 and len(trainer.features.train_passes) == 1
    assert len(trainer.state.history) > 10, log  # not 1 epoch and out of time
    assert 0.9 * budget <= clock.t <= 1.02 * budget, log


def test_passes_that_fit_are_computed_and_counted_so_the_run_ends_on_time(make_config, monkeypatch):
    budget = 40.0
    trainer, result, clock, log = _run(make_config, monkeypatch, budget)
    assert "cached pass computed" not in log, log
    assert clock.passes == 2
    assert clock.t <= 1.02 * budget, log  # the second pass was in the plan, not a surprise


def test_pending_counts_the_passes_an_epoch_range_needs_that_are_not_computed():
    made: list[int] = []
    cache = CachedFeatures({}, 3, lambda k, epoch: made.append(k) or torch.zeros(1), first_epoch=2)
    assert cache.pending(0, 2) == 0  # before the cached epochs
    assert cache.pending(2, 3) == 1 and cache.pending(2, 10) == 3
    cache.train(2)
    assert made == [0] and cache.pending(2, 10) == 2 and cache.pending(3, 4) == 1
