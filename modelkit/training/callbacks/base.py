"""Callbacks: how the inside acts on a training run (events are how the outside hears of it).

A callback subclasses ``Callback`` and overrides the hooks it needs; the rest are no-ops. The loop
calls each hook by name on every callback in order (``call_hooks``), as Lightning's
``_call_callback_hooks`` does, so a new hook costs one method here and one call in the loop. Every
hook gets the trainer: a callback reads ``trainer.state`` and ``trainer.config``, may change the
optimizer (the phase switch), and may ask the loop to stop with ``trainer.request_stop(reason)``.

Hooks, in the order a run calls them::

    setup                       run folder chosen, before the images are decoded
    on_fit_start                data, model, optimizer ready (resumed state loaded)
      on_epoch_start(epoch)
        on_batch_start(epoch, batch)
        before_batch(batch)     inputs made (training.inputs.Batch); may change x and target
        after_loss(batch)       logits and loss computed
        before_step(batch)      gradients computed, before the optimizer steps
        on_batch_end(epoch, batch, loss)
      on_epoch_end(epoch, metrics)  metrics complete, trainer.state updated
    on_fit_end(reason)          reason: completed | early_stopping | stopped | pruned
    on_exception(exc)           instead of on_fit_end when the run fails

Callbacks run in the order of their ``order`` (lower first, then as given): the training
techniques, the phase switch, the time budget, the checkpoints, the final evaluation and
calibration, the events, early stopping, then a caller's own callbacks (``CALLER``).

A callback with state that must survive a resume returns it from ``state_dict()``; it is saved
in ``last.pt`` under its ``state_key`` and handed back to ``load_state_dict`` when resuming.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modelkit.training.view import TrainerView

Trainer = TrainerView
"""What the hooks see of ``modelkit.training.loop.Trainer``: its typed view (``training.view``);
the loop imports its callbacks, so a callback module does not import the loop back."""

HOOKS = (
    "setup",
    "on_fit_start",
    "on_epoch_start",
    "on_batch_start",
    "before_batch",
    "after_loss",
    "before_step",
    "on_batch_end",
    "on_epoch_end",
    "on_fit_end",
    "on_exception",
)


# Where each built-in callback runs (``Callback.order``); a caller's own come after them.
TECHNIQUE, PHASE_SWITCH, TIME_BUDGET, CHECKPOINT, FINAL, EVENTS, EARLY_STOP = range(10, 80, 10)
CALLER = 100


class Callback:
    """No-op hooks; override those you need."""

    main_only = False  # True: only rank 0 of a distributed run keeps it (writes files, reports)
    order = CALLER  # lower runs first; equal orders keep the order they were given in

    @property
    def state_key(self) -> str:
        return type(self).__name__

    def setup(self, trainer: Trainer) -> None: ...

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_start(self, trainer: Trainer, epoch: int, batch: int) -> None: ...

    def before_batch(self, trainer: Trainer, batch: Any) -> None: ...

    def after_loss(self, trainer: Trainer, batch: Any) -> None: ...

    def before_step(self, trainer: Trainer, batch: Any) -> None: ...

    def on_batch_end(self, trainer: Trainer, epoch: int, batch: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: Trainer, reason: str) -> None: ...

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def in_order(callbacks: Iterable[Callback]) -> list[Callback]:
    """``callbacks`` sorted by their ``order``; ties keep the order given."""
    return sorted(callbacks, key=lambda cb: cb.order)


def call_hooks(
    callbacks: Iterable[Callback], hook: str, trainer: Trainer, *args: Any, quiet: bool = False
) -> None:
    """Call ``hook`` on every callback in order. ``quiet``: a failing callback is skipped, so the
    last hooks of a failing run still reach every callback (the real error is raised anyway)."""
    if hook not in HOOKS:
        raise ValueError(f"unknown callback hook {hook!r}; hooks are {HOOKS}")
    for callback in list(callbacks):
        fn = getattr(callback, hook, None)
        if not callable(fn):
            continue
        if not quiet:
            fn(trainer, *args)
            continue
        try:
            fn(trainer, *args)
        except Exception:  # noqa: BLE001 - a broken callback must not hide the real error
            pass


def callback_states(callbacks: Iterable[Callback]) -> dict[str, dict[str, Any]]:
    """Every callback's non-empty state, keyed by ``state_key`` (saved in last.pt)."""
    states = {cb.state_key: cb.state_dict() for cb in callbacks}
    return {k: v for k, v in states.items() if v}


def load_callback_states(callbacks: Iterable[Callback], states: dict[str, Any]) -> None:
    for cb in callbacks:
        if cb.state_key in (states or {}):
            cb.load_state_dict(states[cb.state_key])
