"""The loop's callbacks: hooks by name in order, a callback stopping the run with a reason, the
loop state saved in last.pt (and read from a checkpoint written before callbacks kept state)."""

from __future__ import annotations

import pytest
import torch

from modelkit.events import EpochEnd, Finished, Stopped
from modelkit.models.checkpoint import load_checkpoint, save_checkpoint
from modelkit.runs.store import load_run
from modelkit.training.callbacks import HOOKS, Callback, call_hooks
from modelkit.training.callbacks.base import in_order
from modelkit.training.loop import Trainer
from modelkit.training.state import LoopState


class Journal(Callback):
    """Writes down every hook it receives; asks the loop to stop after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None, reason: str = "early_stopping"):
        self.calls: list[tuple] = []
        self.stop_after, self.reason = stop_after, reason

    def setup(self, trainer):
        self.calls.append(("setup",))

    def on_fit_start(self, trainer):
        self.calls.append(("on_fit_start", trainer.state.epoch))

    def on_epoch_start(self, trainer, epoch):
        self.calls.append(("on_epoch_start", epoch))

    def on_batch_start(self, trainer, epoch, batch):
        self.calls.append(("on_batch_start", epoch, batch))

    def on_batch_end(self, trainer, epoch, batch, loss):
        self.calls.append(("on_batch_end", epoch, batch))

    def on_epoch_end(self, trainer, epoch, metrics):
        self.calls.append(("on_epoch_end", epoch, trainer.state.epoch, "train_loss" in metrics))
        if self.stop_after is not None and epoch + 1 >= self.stop_after:
            trainer.request_stop(self.reason)

    def on_fit_end(self, trainer, reason):
        self.calls.append(("on_fit_end", reason))

    def on_exception(self, trainer, exc):
        self.calls.append(("on_exception", type(exc).__name__))


def _names(calls: list[tuple]) -> list[str]:
    return [c[0] for c in calls if not c[0].startswith("on_batch")]


def test_a_callback_hears_every_hook_in_order(make_config):
    journal = Journal()
    trainer = Trainer(make_config(epochs=2), callbacks=[journal])
    result = trainer.fit()
    assert result.state == "finished"
    assert _names(journal.calls) == [
        "setup", "on_fit_start",
        "on_epoch_start", "on_epoch_end", "on_epoch_start", "on_epoch_end",
        "on_fit_end",
    ]  # fmt: skip
    assert ("on_epoch_end", 1, 2, True) in journal.calls  # the state is updated before the hook
    assert journal.calls[-1] == ("on_fit_end", "completed")
    steps = trainer.steps_per_epoch
    batches = [c for c in journal.calls if c[0] == "on_batch_end"]
    assert batches == [("on_batch_end", e, b) for e in range(2) for b in range(steps)]


def test_a_callback_stops_the_loop_with_its_reason(make_config):
    events = []
    journal = Journal(stop_after=1, reason="early_stopping")
    result = Trainer(make_config(epochs=5), [events.append], callbacks=[journal]).fit()
    assert result.state == "finished" and result.last["epoch"] == 1
    assert journal.calls[-1] == ("on_fit_end", "early_stopping")
    assert [e.reason for e in events if isinstance(e, Finished)] == ["early_stopping"]


def test_a_pruned_run_is_recorded_pruned_not_stopped(make_config):
    events = []
    journal = Journal(stop_after=2, reason="pruned")
    result = Trainer(make_config(epochs=5), [events.append], callbacks=[journal]).fit()
    assert result.state == "pruned" and result.last["epoch"] == 2
    (stopped,) = [e for e in events if isinstance(e, Stopped)]
    assert stopped.reason == "pruned" and stopped.epoch == 1
    assert not any(isinstance(e, Finished) for e in events)
    assert [e.epoch for e in events if isinstance(e, EpochEnd)] == [0, 1]
    info = load_run(result.run_dir)
    assert info.state == "pruned" and info.epochs_done == 2
    assert "pruned after epoch 2" in (result.run_dir / "log.txt").read_text()


def test_a_failing_run_calls_on_exception_instead_of_on_fit_end(make_config):
    class Boom(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            raise ValueError("boom")

    journal = Journal()
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(make_config(epochs=2), callbacks=[Boom(), journal]).fit()
    assert journal.calls[-1] == ("on_exception", "ValueError")
    assert "on_fit_end" not in _names(journal.calls)


def test_unknown_hooks_are_refused():
    assert "on_epoch_end" in HOOKS
    with pytest.raises(ValueError, match="unknown callback hook"):
        call_hooks([Callback()], "on_epoch_ended", None)


def test_the_loop_state_round_trips_and_reads_old_checkpoints(make_config):
    state = LoopState()
    state.observe(0, {"val_loss": 0.5}, "val_loss", higher=False)
    state.observe(1, {"val_loss": 0.7}, "val_loss", higher=False)
    assert (state.epoch, state.best_value, state.bad_epochs) == (2, 0.5, 1)
    again = LoopState()
    again.load_state_dict(state.state_dict())
    assert again.state_dict() == state.state_dict() and again.last_metrics["epoch"] == 2

    # a last.pt written before callbacks kept state (no "callbacks" key) still resumes
    cfg = make_config(epochs=3)
    stopper = Journal(stop_after=1, reason="stopped")
    run_dir = Trainer(cfg, callbacks=[stopper]).fit().run_dir
    last = run_dir / "checkpoints" / "last.pt"
    payload = load_checkpoint(last)
    payload.pop("callbacks", None)
    save_checkpoint(last, payload)
    result = Trainer.resume(run_dir).fit()
    assert result.state == "finished" and result.last["epoch"] == 3
    assert [row["epoch"] for row in load_checkpoint(last)["history"]] == [1, 2, 3]


# -- batch-level hooks: a technique is a callback, not loop code ----------------------------------
class AlwaysFirstClass(Callback):
    """A batch-level technique written as a callback: it relabels every image as class 0 before
    the forward pass, and watches the loss and the gradients the loop computes from it."""

    def __init__(self):
        self.losses: list[float] = []
        self.had_gradients: list[bool] = []

    def before_batch(self, trainer, batch):
        assert batch.images and batch.x.shape[0] == len(batch.idx) == len(batch.y)
        batch.target = torch.zeros_like(batch.y)

    def after_loss(self, trainer, batch):
        assert batch.logits is not None and batch.logits.shape[0] == len(batch.y)
        self.losses.append(float(batch.loss.detach()))

    def before_step(self, trainer, batch):
        grads = [p.grad for p in trainer.model.parameters() if p.requires_grad]
        self.had_gradients.append(all(g is not None for g in grads))


def test_batch_hooks_change_the_targets_and_see_the_loss_and_gradients(make_config):
    probe = AlwaysFirstClass()
    trainer = Trainer(make_config(epochs=3, lr=0.05), callbacks=[probe])
    assert trainer.fit().state == "finished"
    steps = trainer.steps_per_epoch
    assert len(probe.losses) == len(probe.had_gradients) == 3 * steps
    assert all(probe.had_gradients)  # before_step comes after backward
    first, last = sum(probe.losses[:steps]), sum(probe.losses[-steps:])
    assert last < first / 2  # it learned the targets the callback gave, not the labels
    logits, _ = trainer.predict("val", tta=False)
    assert (logits.argmax(1) == 0).all()


def test_callbacks_run_in_their_declared_order_whatever_order_they_are_given(make_config):
    class Early(Callback):
        order = 5  # before the training techniques

    cfg = make_config(epochs=1, time_budget=600, mixup_alpha=0.2, warmup_epochs=1)
    trainer = Trainer(cfg, callbacks=[Journal(), Early()])
    trainer.fit()
    names = [type(cb).__name__ for cb in trainer.callbacks]
    assert names == [
        "Early", "ClassBalance", "Warmup", "MixHandler", "PhaseSwitch", "TimeBudget",
        "Checkpoint", "FinalEvaluation", "Calibrate", "EventReporter", "EarlyStopping", "Journal",
    ]  # fmt: skip
    assert in_order([Journal(), Early()])[0].order == 5


def test_a_trainer_has_everything_its_typed_view_promises_the_callbacks(make_config):
    """The view callbacks are typed with (training.view.TrainerView) does not promise an
    attribute or method the Trainer lacks."""
    import typing

    from modelkit.training.view import TrainerView

    seen = {}

    class Look(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            fields = typing.get_type_hints(TrainerView)
            methods = [n for n in vars(TrainerView) if not n.startswith("_")]
            seen["missing"] = [n for n in [*fields, *methods] if not hasattr(trainer, n)]

    Trainer(make_config(epochs=1), callbacks=[Look()]).fit()
    assert seen["missing"] == []


def test_every_attribute_a_trainer_or_callback_sets_is_declared_in_one_place():
    """The Trainer's state is read in one place: what ``__init__`` sets, and what ``fit`` sets up
    (declared on the class). A new attribute set anywhere else, by the loop or by a callback
    writing ``trainer.x = ...``, fails here until it is declared there."""
    import ast
    import inspect
    from pathlib import Path

    import modelkit.training as training
    from modelkit.training import loop

    declared = set(Trainer.__annotations__)
    init = inspect.getsource(Trainer.__init__)
    declared |= {
        n.attr
        for n in ast.walk(ast.parse(inspect.cleandoc("\n" + init)))
        if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
    }
    set_anywhere: dict[str, str] = {}
    for path in Path(training.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                owner = node.value
                is_self = path == Path(loop.__file__) and getattr(owner, "id", "") == "self"
                if is_self or getattr(owner, "id", "") == "trainer":
                    set_anywhere.setdefault(node.attr, path.name)
    undeclared = {a: where for a, where in set_anywhere.items() if a not in declared}
    assert not undeclared, f"declare these on Trainer: {undeclared}"
