"""A time budget: the epochs are fixed from timed batches, the schedule is laid out over them, the
run ends as a finished run (final evaluation done) by the budget's decision; ``--time-budget``
takes durations the way a person writes them. No test asserts a time; the budgets are a few
seconds, above what decoding and the first (warm-up) batch take on a busy shared CPU."""

from __future__ import annotations

import pytest

from modelkit.cli.main import main
from modelkit.config import TrainConfig
from modelkit.config.declare import parse_duration
from modelkit.events import UNTRAINED, Planned
from modelkit.jobs.thread_job import TrainingJob
from modelkit.runs.folder import RunFolder
from modelkit.runs.store import read_json, read_metrics
from modelkit.training.callbacks.time_budget import REASON, TimeBudget
from modelkit.training.loop import Trainer


def _budget_of(trainer: Trainer) -> TimeBudget:
    return next(cb for cb in trainer.callbacks if isinstance(cb, TimeBudget))


def _log(run_dir) -> str:
    return (run_dir / "log.txt").read_text(encoding="utf-8")


class SimulatedClock(TimeBudget):
    """A budget on a clock of its own: decoding takes 1 s, a training batch 0.1 s, a validation
    pass 0.05 s, whatever the shared machine's load, so the decision can be checked exactly."""

    def setup(self, trainer):
        self.trainer = trainer
        super().setup(trainer)
        self.started = 0.0  # the simulated clock starts at 0 when fit starts

    def now(self) -> float:
        t = getattr(self, "trainer", None)
        if t is None or not hasattr(t, "data"):
            return 0.0
        return 1.0 + 0.1 * t.state.global_step + 0.05 * len(t.state.history)

    def on_epoch_end(self, trainer, epoch, metrics):
        # the loop times an epoch's training part on the real clock, which says how long its
        # validation took: on this clock, 0.1 s a batch (a busy machine made it 0.4 s an epoch)
        simulated = {**metrics, "epoch_seconds": 0.1 * trainer.steps_per_epoch}
        super().on_epoch_end(trainer, epoch, simulated)


def _simulated(make_config, budget: float, **settings) -> tuple[Trainer, SimulatedClock]:
    clock = SimulatedClock(budget)
    trainer = Trainer(make_config(**settings), callbacks=[clock])
    return trainer, clock


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_a_budget_fixes_the_epochs_from_the_first_epoch_and_lays_out_the_schedule(
    make_config, scheduler
):
    # 24 training images in batches of 8: 3 batches (0.3 s) + validation (0.05 s) an epoch;
    # after decoding (1 s) and the first epoch, 3 s * 0.99 leaves 1.62 s: 4 more epochs.
    trainer, clock = _simulated(make_config, 3.0, epochs=1000, scheduler=scheduler)
    result = trainer.fit()
    assert result.state == "finished"
    assert "from the first epoch" in clock.decision
    assert "so 5 epochs (asked: 1000)" in clock.decision
    assert clock.decided_epochs == trainer.plan.epochs == 5
    assert len(read_metrics(result.run_dir)) == 5  # it ended at the decided epoch
    assert clock.decision in _log(result.run_dir)
    # what was asked stays asked; the plan says what the run did instead, and why
    assert trainer.config.epochs == 1000
    assert TrainConfig.load(RunFolder(result.run_dir).config).epochs == 1000
    plan = read_json(RunFolder(result.run_dir).plan)
    assert plan["epochs"] == 5 and plan["asked_epochs"] == 1000
    assert plan["summary"] == "planned 5 of the 1000 epochs asked: 3s time budget"
    assert read_json(result.run_dir / "status.json")["state"] == "finished"
    assert (result.run_dir / "evaluation" / "val.json").is_file()  # the final evaluation ran
    if scheduler == "onecycle":  # laid out over the decided epochs, not the 1000 asked for
        assert trainer.scheduler.total_steps == 5 * trainer.steps_per_epoch
        assert trainer.scheduler.last_epoch == 5 * trainer.steps_per_epoch
    else:
        assert trainer.scheduler.T_max == 5 and trainer.scheduler.last_epoch == 5


def test_a_budget_ends_a_short_run_early_but_never_stretches_it(make_config):
    # 3 epochs take 1 + 3 * 0.35 s on the simulated clock: far inside 100 s, so 3 epochs
    trainer, clock = _simulated(make_config, 100.0, epochs=3, scheduler="cosine")
    result = trainer.fit()
    assert clock.decided_epochs == trainer.plan.epochs == 3
    assert "so 3 epochs (asked: 3)" in clock.decision
    assert len(read_metrics(result.run_dir)) == 3
    assert read_json(result.run_dir / "status.json")["reason"] != REASON


class BatchClock(TimeBudget):
    """A simulated clock: decoding takes 1 s, each batch ``batch_cost`` seconds, a validation
    pass 0.05 s; the loop's own ``epoch_seconds`` (wall time) is replaced by the simulated
    training time, so no real timing reaches the decision."""

    def batch_cost(self, trainer, epoch: int) -> float:
        return 0.1

    def setup(self, trainer):
        self.t = 1.0  # decoding
        super().setup(trainer)
        self.started = 0.0

    def now(self) -> float:
        return getattr(self, "t", 0.0)

    def on_epoch_start(self, trainer, epoch):
        super().on_epoch_start(trainer, epoch)
        self.training = 0.0

    def on_batch_end(self, trainer, epoch, batch, loss):
        cost = self.batch_cost(trainer, epoch)
        self.t += cost
        self.training += cost
        super().on_batch_end(trainer, epoch, batch, loss)

    def on_epoch_end(self, trainer, epoch, metrics):
        self.t += 0.05
        super().on_epoch_end(trainer, epoch, {**metrics, "epoch_seconds": self.training})


class SizeClock(BatchClock):
    """A batch costs in proportion to its images' side (0.1 s at the full size; measured on a
    CPU, closer than the area): what progressive resizing does to epoch times."""

    def batch_cost(self, trainer, epoch: int) -> float:
        return 0.1 * trainer.train_size / trainer.config.image_size


def test_with_progressive_resizing_the_budget_counts_the_larger_epochs_to_come(make_config):
    """The first epoch runs at the smallest size; the later, larger epochs cost more, so the
    decision that fits them in the budget is the run's end, not the safety net."""
    clock = SizeClock(6.0)
    cfg = make_config(
        epochs=1000, scheduler="onecycle", progressive_resize=True, progressive_min_size=16
    )
    trainer = Trainer(cfg, callbacks=[clock])
    result = trainer.fit()
    status = read_json(result.run_dir / "status.json")
    assert status["reason"] != REASON, clock.decision  # it ended at its own decision
    assert len(read_metrics(result.run_dir)) == clock.decided_epochs == trainer.plan.epochs
    assert clock.t <= 6.0
    assert clock.t > 6.0 * 0.8, clock.decision  # and used the budget
    sizes = [m.get("train_size") for m in read_metrics(result.run_dir)]
    assert trainer.train_size == cfg.image_size, sizes  # the last epoch at the full size


def test_long_epochs_are_decided_after_a_few_timed_batches(make_config, make_dataset):
    data = make_dataset("many", per_class=20)  # 48 training images, batches of 2: 24 steps
    trainer, clock = _simulated(
        make_config, 10.0, data_dir=data, batch_size=2, epochs=500, scheduler="onecycle"
    )
    result = trainer.fit()
    assert result.state == "finished"
    log = _log(result.run_dir)
    assert "from 4 timed batches" in log  # decided early; checked again after the whole epoch
    assert clock.decision in log and "asked: 500" in clock.decision
    assert trainer.plan.epochs == clock.decided_epochs < 500
    assert trainer.scheduler.total_steps == clock.decided_epochs * 24
    assert len(read_metrics(result.run_dir)) == clock.decided_epochs


def test_an_early_estimate_is_corrected_after_the_first_whole_epoch(make_config, make_dataset):
    """Timed batches miss the validation pass: here it costs 1 s, as much as the 10 batches
    of the epoch, so the count fixed from them is halved once the whole epoch is measured."""

    class SlowValidation(SimulatedClock):
        def now(self) -> float:
            t = getattr(self, "trainer", None)
            if t is None or not hasattr(t, "data"):
                return 0.0
            return 1.0 + 0.1 * t.state.global_step + 1.0 * len(t.state.history)

        def on_epoch_end(self, trainer, epoch, metrics):
            # the loop's own epoch_seconds is wall time: on a busy CI machine it moved the
            # validation estimate; the simulated training part is 0.1 s a batch
            simulated = {**metrics, "epoch_seconds": 0.1 * trainer.steps_per_epoch}
            super().on_epoch_end(trainer, epoch, simulated)

    data = make_dataset("many", per_class=20)
    clock = SlowValidation(12.0)
    cfg = make_config(data_dir=data, batch_size=2, epochs=500, scheduler="onecycle")
    trainer = Trainer(cfg, callbacks=[clock])
    result = trainer.fit()
    log = _log(result.run_dir)
    early = int(log.split("from 4 timed batches), so ")[1].split(" ")[0])
    assert "from the first whole epoch" in log
    assert clock.decided_epochs < early
    assert len(read_metrics(result.run_dir)) == clock.decided_epochs
    assert read_json(result.run_dir / "status.json")["reason"] != REASON


def test_epochs_that_grow_slower_shorten_the_schedule_so_it_still_anneals(make_config):
    """Each epoch here costs 20% more than the one before (a machine getting busier): the count
    fixed after the first epoch no longer fits. The schedule is laid out again over fewer
    epochs before the budget runs out, so the run ends at its own decision with its one-cycle
    rate fully annealed, not cut by the safety net with the rate still high."""

    class Slowing(BatchClock):
        def batch_cost(self, trainer, epoch: int) -> float:
            return 0.1 * 1.2**epoch

    clock = Slowing(6.0)
    trainer = Trainer(make_config(epochs=1000, scheduler="onecycle"), callbacks=[clock])
    result = trainer.fit()
    log = _log(result.run_dir)
    first = int(log.split("from the first epoch), so ")[1].split(" ")[0])
    assert clock.decided_epochs < first, log  # shortened on the way
    assert read_json(result.run_dir / "status.json")["reason"] != REASON, log
    assert len(read_metrics(result.run_dir)) == clock.decided_epochs == trainer.plan.epochs
    assert trainer.scheduler.total_steps == clock.decided_epochs * trainer.steps_per_epoch
    assert trainer.scheduler.last_epoch == trainer.scheduler.total_steps  # annealed to the end
    assert clock.t <= 6.0


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_epochs_that_turn_out_faster_lengthen_the_schedule_while_the_rate_still_rises(
    make_config, scheduler
):
    """The first epoch pays for warming up (twice the later ones here): the count fixed from it
    would leave the budget 40% unused. While one-cycle's rate still rises the schedule is laid
    out over more epochs; the run still ends on its own decision, fully annealed, in time."""

    class WarmingUp(BatchClock):
        def batch_cost(self, trainer, epoch: int) -> float:
            return 0.2 if epoch == 0 else 0.1

    clock = WarmingUp(8.0)
    trainer = Trainer(make_config(epochs=1000, scheduler=scheduler), callbacks=[clock])
    result = trainer.fit()
    log = _log(result.run_dir)
    first = int(log.split("from the first epoch), so ")[1].split(" ")[0])
    assert clock.decided_epochs > first, log  # lengthened on the way
    assert "from epoch 3" in log, log  # as soon as the typical epoch is a fast one
    assert read_json(result.run_dir / "status.json")["reason"] != REASON, log
    assert len(read_metrics(result.run_dir)) == clock.decided_epochs == trainer.plan.epochs
    if scheduler == "onecycle":
        assert trainer.scheduler.total_steps == clock.decided_epochs * trainer.steps_per_epoch
        assert trainer.scheduler.last_epoch == trainer.scheduler.total_steps  # fully annealed
    else:
        assert trainer.scheduler.T_max == clock.decided_epochs == trainer.scheduler.last_epoch
    assert 8.0 * 0.85 < clock.t <= 8.0, log  # the budget used, not overrun


def _decided_and_trained(result) -> tuple[str, int, int]:
    """(the run's log, the epochs first decided from the first epoch, the epochs trained)."""
    log = _log(result.run_dir)
    first = int(log.split("from the first epoch), so ")[1].split(" ")[0])
    return log, first, len(read_metrics(result.run_dir))


def test_one_slow_epoch_does_not_cut_the_run_short(make_config):
    """Another program slows one epoch to five times its usual length: the count is kept (the
    typical epoch is the median of the last three), so the run still uses its budget."""

    class OneSlowEpoch(BatchClock):
        def batch_cost(self, trainer, epoch: int) -> float:
            return 0.5 if epoch == 2 else 0.1

    clock = OneSlowEpoch(8.0)
    trainer = Trainer(make_config(epochs=1000, scheduler="onecycle"), callbacks=[clock])
    result = trainer.fit()
    log, first, epochs = _decided_and_trained(result)
    # the slow epoch's extra 1.2 s cost the three epochs it took, not half the run
    assert epochs >= first - 4, log
    assert clock.t > 8.0 * 0.85, log  # and the budget was used


def test_an_epoch_that_first_computes_a_cached_pass_is_not_taken_for_the_typical_one(
    make_config,
):
    """Epochs on cached passes compute each pass when they first need it: on Caltech-101 the
    second fine-tuning epoch on cached stage maps took 65 s, 55 of them computing its pass, and
    the others 10 s. That time is spent (the count goes down by what it cost) but the epochs to
    come are not taken to cost it too (which cut that run from 17 epochs to 14)."""

    class PassOnce(BatchClock):
        def batch_cost(self, trainer, epoch: int) -> float:
            if epoch == 1 and trainer.state.global_step % trainer.steps_per_epoch == 0:
                trainer.one_off_seconds += 2.0  # this batch first computed a pass
                return 2.1
            return 0.1

    clock = PassOnce(12.0)
    trainer = Trainer(make_config(epochs=1000, scheduler="onecycle"), callbacks=[clock])
    result = trainer.fit()
    log, first, epochs = _decided_and_trained(result)
    # 2 s is about six 0.35 s epochs; taken as what every epoch costs it would leave three
    assert first - 8 <= epochs < first, log
    assert clock.t > 12.0 * 0.85, log  # the budget was used


def test_a_fine_tuning_epoch_that_cannot_end_in_time_is_not_trained_on(make_config, make_dataset):
    """Head epochs on cached features are cheap; here a fine-tuning epoch costs 24 s against a
    10 s budget. Once its first batches are timed the run stops, with the head's weights,
    instead of training on until the budget cuts an epoch whose weights would never be
    judged."""

    class CheapHead(BatchClock):
        def batch_cost(self, trainer, epoch: int) -> float:
            return 0.01 if trainer.phase == 1 else 1.0

    data = make_dataset("many", per_class=20)  # 48 training images, batches of 2: 24 steps
    clock = CheapHead(10.0)
    cfg = make_config(data_dir=data, batch_size=2, epochs=4, head_epochs=2, scheduler="cosine")
    result = Trainer(cfg, callbacks=[clock]).fit()
    status = read_json(result.run_dir / "status.json")
    assert result.state == "finished" and status["reason"] == REASON
    assert "the epoch under way would end past the budget" in _log(result.run_dir)
    assert len(read_metrics(result.run_dir)) == 2  # the head's epochs, judged and kept
    assert clock.t < 8.0  # stopped after the timed batches, not at the budget
    assert (result.run_dir / "evaluation" / "val.json").is_file()


def test_a_budget_spent_before_the_first_epoch_is_never_a_finished_run(make_config):
    """The newcomer's 150 s auto run spent its budget preparing and showed a green "Training
    finished." with no epoch trained (issue #29): it is a stopped run that says why."""

    class Spent(TimeBudget):
        """Spent before it starts."""

        def elapsed(self) -> float:
            return self.budget + 1.0

    trainer = Trainer(make_config(epochs=5), callbacks=[Spent(2.0)])
    result = trainer.fit()
    assert result.state == UNTRAINED
    status = read_json(result.run_dir / "status.json")
    assert status["state"] == "stopped" and status["reason"] == UNTRAINED
    assert len(read_metrics(result.run_dir)) == 0  # stopped in the first batch
    log = _log(result.run_dir)
    assert "time budget 2s: stopping" in log and "no epoch was trained" in log
    assert not (result.run_dir / "evaluation" / "val.json").exists()  # nothing to evaluate


def test_the_live_view_says_no_model_was_trained(make_config):
    job = TrainingJob(make_config(epochs=3, time_budget=0.001))
    job.start().join(120)
    view = job.snapshot()
    assert view.state == "stopped" and view.stop_reason == UNTRAINED
    assert any("no epoch was trained" in line for line in view.log)


def test_a_real_budget_ends_the_run_by_its_own_decision(make_config):
    """On the wall clock: the run ends at the epochs the budget fixed, or at the budget."""
    trainer = Trainer(make_config(epochs=1000, time_budget=15.0, scheduler="onecycle"))
    result = trainer.fit()
    budget = _budget_of(trainer)
    assert result.state == "finished"
    status = read_json(result.run_dir / "status.json")
    epochs_run = len(read_metrics(result.run_dir))
    assert (budget.decided_epochs and epochs_run == budget.decided_epochs < 1000) or (
        status["reason"] == REASON
    )


def test_no_budget_no_callback(make_config):
    trainer = Trainer(make_config(epochs=1))
    trainer.fit()
    assert not any(isinstance(cb, TimeBudget) for cb in trainer.callbacks)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("45", 45), ("1.5m", 90)],
)
def test_durations_read_as_people_write_them(text, seconds):
    assert parse_duration(text) == seconds


def test_the_cli_takes_a_duration_and_refuses_nonsense_in_one_line(capsys, image_dataset):
    from modelkit.cli.common import config_from_args
    from modelkit.cli.main import build_parser

    args = build_parser().parse_args(
        ["train", str(image_dataset), "--weights", "none", "--time-budget", "10m"]
    )
    assert config_from_args(args).time_budget == 600.0
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["train", str(image_dataset), "--time-budget", "ten minutes"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1
    assert "--time-budget" in err[0] and "expected a duration such as 90s" in err[0]


def test_the_live_view_counts_the_planned_epochs_and_says_why(make_config):
    job = TrainingJob(make_config(epochs=60))
    assert job.snapshot().epochs == 60 and job.snapshot().plan == ""
    job._on_event(Planned(19, 60, "planned 19 of the 60 epochs asked: 15m00s time budget"))
    view = job.snapshot()
    assert view.epochs == 19  # the progress bar and the ETA count the epochs that will run
    assert view.plan == "planned 19 of the 60 epochs asked: 15m00s time budget"
