"""The time budget plans the epochs again after every epoch: epochs that turn faster halfway add
epochs and the run still ends at its budget; epochs that turn slower remove them and the run does
not overrun. The rate follows the plan without a jump. The clock is a fake one (the ``time``
module of the callback and of the loop), moved by what each batch and each pass over the
validation images is said to cost, so nothing depends on how busy the machine is."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modelkit.events import BatchEnd
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.store import read_metrics
from modelkit.training import loop
from modelkit.training.callbacks import time_budget
from modelkit.training.callbacks.base import Callback
from modelkit.training.callbacks.time_budget import REASON
from modelkit.training.loop import Trainer

DECODING = 1.0  # seconds before the first batch
PER_VAL_IMAGE = 0.005  # an image validated or evaluated


class FakeClock(Callback):
    """Moves the fake clock: decoding, each batch (``cost(epoch)`` seconds) and each image
    predicted (validation, final evaluation)."""

    def __init__(self, cost, monkeypatch: pytest.MonkeyPatch) -> None:
        self.t, self.cost = 0.0, cost
        fake = SimpleNamespace(perf_counter=lambda: self.t)
        monkeypatch.setattr(time_budget, "time", fake)
        monkeypatch.setattr(loop, "time", fake)
        predict = Trainer.predict

        def timed_predict(trainer, split, *args, **kwargs):
            self.t += PER_VAL_IMAGE * len(trainer.data.rows.get(split, []))
            return predict(trainer, split, *args, **kwargs)

        monkeypatch.setattr(Trainer, "predict", timed_predict)

    def setup(self, trainer) -> None:
        self.t += DECODING

    def before_batch(self, trainer, batch) -> None:
        self.t += self.cost(trainer.state.global_step // trainer.steps_per_epoch)


def _budgeted_run(make_config, monkeypatch, budget: float, cost, scheduler: str):
    clock = FakeClock(cost, monkeypatch)
    rates: list[float] = []  # the rate of every batch, as the live view hears it
    cfg = make_config(epochs=1000, time_budget=budget, scheduler=scheduler)
    trainer = Trainer(
        cfg,
        [lambda e: rates.append(e.lr) if isinstance(e, BatchEnd) else None],
        callbacks=[clock],
    )
    result = trainer.fit()
    log = RunFolder(result.run_dir).log.read_text(encoding="utf-8")
    first = int(log.split("from the first epoch), so ")[1].split(" ")[0])
    return trainer, result, clock, log, first, rates


def _no_jump(rates: list[float]) -> None:
    """Once the rate falls it falls smoothly to the end, whatever the plan did meanwhile: never up
    again, and between two batches by at most a tenth of its peak (laid out again from where it
    was, not restarted over the new length, which would put it back up or drop it at once)."""
    rates = rates[:-1]  # each is the rate the next batch takes: the last one is never used
    peak = max(rates)
    falling = rates[rates.index(peak) :]
    steps = [a - b for a, b in zip(falling, falling[1:], strict=False)]
    assert min(steps) >= -1e-9 * peak, min(steps) / peak
    assert max(steps) <= 0.1 * peak, max(steps) / peak


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_epochs_that_turn_faster_halfway_add_epochs_and_the_run_ends_at_its_budget(
    make_config, monkeypatch, scheduler
):
    # 3 batches an epoch: 0.2 s each for the first 8 epochs (the plan is fixed from those),
    # then 0.1 s: the first plan would end near 9 s of the 12 s budget
    budget = 12.0
    trainer, result, clock, log, first, rates = _budgeted_run(
        make_config, monkeypatch, budget, lambda epoch: 0.2 if epoch < 8 else 0.1, scheduler
    )
    epochs = len(read_metrics(result.run_dir))
    assert trainer.plan.epochs > first + 3, log  # epochs were added as they turned faster
    assert epochs == trainer.plan.epochs  # and trained: the run ended at its own plan
    assert read_json(RunFolder(result.run_dir).status)["reason"] != REASON, log
    assert 0.95 * budget <= clock.t <= budget, log  # within 5% of the budget, not past it
    assert read_json(RunFolder(result.run_dir).plan)["epochs"] == epochs
    _no_jump(rates)
    assert rates[-1] < 0.01 * max(rates)  # annealed to the end of the longer plan


def test_epochs_that_turn_slower_halfway_remove_epochs_and_the_run_does_not_overrun(
    make_config, monkeypatch
):
    # one-cycle steps every batch: its rate shows a jump that cosine's (a step an epoch) hides
    budget = 12.0
    trainer, result, clock, log, first, rates = _budgeted_run(
        make_config, monkeypatch, budget, lambda epoch: 0.1 if epoch < 8 else 0.2, "onecycle"
    )
    epochs = len(read_metrics(result.run_dir))
    assert epochs == trainer.plan.epochs < first, log  # epochs were removed
    assert read_json(RunFolder(result.run_dir).status)["reason"] != REASON, log
    assert 0.9 * budget <= clock.t <= 1.05 * budget, log
    _no_jump(rates)
    assert rates[-1] < 0.01 * max(rates)  # annealed by the end of the shorter plan
