"""A time budget: the run is laid out to end on time, and stops at the budget if it must.

A person says "ten minutes", not "eleven epochs". The clock starts before the images are decoded
(decoding is part of what the person waits for). The first batches of training are timed; from
their rate, the validation pass and the final evaluation still to come, the number of epochs that
fits is fixed, and the learning-rate schedule (cosine, one-cycle) is laid out over that many
epochs so it ends where the budget ends rather than being cut in the middle. When epochs are long
against the budget the decision comes after a few batches, else after the first whole epoch (then
the validation pass is measured, not guessed). A two-phase run decides at the start of its
fine-tuning phase, whose batches cost what the rest will. After every epoch the count is planned
again from the typical epoch (the median of the last three, one-off work left out): epochs that
turn out faster add epochs, slower ones remove them, and the schedule follows without a jump in
the rate (a falling rate keeps falling, to its end at the new last epoch). The epochs asked for
are an upper bound: a run that fits in less time than its budget ends early, and says so. As a
safety net the run stops cleanly (reason ``time_budget``, a finished run, with its final
evaluation) when the next epoch cannot end in time. A run that ends well before its budget says
why in one sentence (the log, the terminal, status.json's ``budget_note``). Each decision is said
in the run log in one line, and saved in last.pt so a resumed run keeps it and counts the time
already spent.
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any

from modelkit.data.views import progressive_sizes, tta_view_count
from modelkit.events import Event, Finished, Message
from modelkit.training.callbacks.base import TIME_BUDGET, Callback, Trainer
from modelkit.training.inputs import epoch_cache
from modelkit.training.relay import relay_schedule

REASON = "time_budget"
TIMED_BATCHES = 4  # batches timed after the first one (which pays for warm-up)
MIN_STEPS_TO_DECIDE_EARLY = 20  # shorter epochs are timed whole, validation included
SPARE = 0.01  # share of the budget kept back for writing checkpoints and the log
# schedules whose shape depends on the run's length: they are laid out again over the new epochs
LENGTH_SCHEDULES = ("cosine", "onecycle")
# with progressive resizing, the share of the run in which the epochs may still be lengthened: the
# sizes are laid out over the run's length, so a longer run later on would shrink the images again
RISING = 0.3
# lengthening keeps this share of an epoch back, so a count on the edge does not go up and down
# with each epoch's noise; small, or the run ends that much before its budget
RESERVE = 0.25
# a cached pass still to compute is worth its time while the epochs it leaves are at least this
# share of those that training on the passes computed would fit
PASS_WORTH = 0.5
USED_ENOUGH = 0.9  # a run that ends before this share of its budget says why (budget_note)
BUDGET_NOTE = "budget_note"  # the status.json key of that sentence


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class TimeBudget(Callback):
    """Fit the epochs of a run into ``budget`` seconds of wall time (decoding included)."""

    order = TIME_BUDGET

    def __init__(self, budget: float):
        self.budget = float(budget)
        self.spent_before = 0.0  # seconds a resumed run had already spent
        self.decided_epochs = 0  # 0: not decided yet
        self.decided_phase = -1
        self.phase = 0  # the phase of the epoch under way
        self.started = 0.0
        self.batch_times: list[float] = []
        self.epoch_started = 0.0
        self.epoch_seconds = 0.0  # a whole epoch, validation included (estimate, then measured)
        self.eval_per_image = 0.0
        self.said_stop = False
        self.decision = ""  # the line the log got (tests and the benchmark read it)
        self.epoch_size = 0  # the training image size of the epoch under way
        self.recheck = False  # decided from timed batches: check again at the epoch's end
        self.recent: list[tuple[float, int]] = []  # (seconds, image size) of the last epochs
        self.one_off_at_start = 0.0  # the trainer's one-off seconds when the epoch started
        self.stop_why = ""  # why the budget stopped the run, when it did
        self.note = ""  # why the run ended well before its budget, once it has

    # -- the clock ----------------------------------------------------------------------------
    def now(self) -> float:
        """The wall clock (a test may run the callback on a clock of its own)."""
        return time.perf_counter()

    def elapsed(self) -> float:
        return self.spent_before + self.now() - self.started

    def setup(self, trainer: Trainer) -> None:
        # from the start of fit (building the model, loading weights) and before decoding:
        # all of it is part of the wait
        before = time.perf_counter() - getattr(trainer, "fit_started", time.perf_counter())
        self.started = self.now() - before
        if trainer.dist.is_main:  # the note comes once the final evaluation is done
            trainer.listeners.append(partial(self._hear, trainer))

    def state_dict(self) -> dict[str, Any]:
        return {"spent": self.elapsed(), "epochs": self.decided_epochs, "phase": self.decided_phase}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.spent_before = float(state.get("spent", 0.0))
        self.decided_epochs = int(state.get("epochs", 0))
        self.decided_phase = int(state.get("phase", -1))

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.decided_epochs and self.decided_epochs != trainer.plan.epochs:  # resumed
            trainer.replan(self.decided_epochs, self._why())

    # -- measuring ----------------------------------------------------------------------------
    def _measuring(self) -> bool:
        """Whether the epochs are still to be fixed in the phase of the epoch under way (phase
        1, head only on a frozen backbone, says nothing about what fine-tuning costs)."""
        return self.phase != 1 and self.decided_phase != self.phase

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.epoch_started = self.now()
        self.one_off_at_start = trainer.one_off_seconds
        self.phase = trainer.phase  # at the epoch's end the phase switch may have moved on
        self.batch_times = []
        self.epoch_size = trainer.train_size  # progressive resizing: this epoch's image size

    def on_batch_end(self, trainer: Trainer, epoch: int, batch: int, loss: float) -> None:
        steps = trainer.steps_per_epoch
        if self._measuring() and steps >= MIN_STEPS_TO_DECIDE_EARLY:
            self.batch_times.append(self.now())
            if len(self.batch_times) == TIMED_BATCHES + 1:
                per_batch = (self.batch_times[-1] - self.batch_times[0]) / TIMED_BATCHES
                n_val = len(trainer.data.rows.get("val", []))
                # a validation image costs about a third of a training one (forward only)
                self.eval_per_image = per_batch / trainer.config.batch_size / 3
                self.epoch_seconds = per_batch * steps + self.eval_per_image * n_val
                left_now = per_batch * (steps - batch - 1) + self.eval_per_image * n_val
                self._decide(trainer, epoch + 1, left_now, f"{TIMED_BATCHES} timed batches")
                self.recheck = True  # once this epoch (and its validation) has been measured
        if trainer.dist.any(self.elapsed() + self._final_eval(trainer) >= self.budget):
            self._stop(trainer, "the budget is spent")

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        seconds = self.now() - self.epoch_started
        n_val = len(trainer.data.rows.get("val", []))
        if n_val:
            val_seconds = max(seconds - float(metrics.get("epoch_seconds", seconds)), 0.0)
            self.eval_per_image = val_seconds / n_val
        if self.phase != 1:
            # an epoch that first computed a cached pass paid once for what the next epochs reuse
            # (benchmarks/results/time_to_accuracy_caltech101_15m_auto_stage_maps_cpu2.json)
            once = trainer.one_off_seconds - self.one_off_at_start
            self.epoch_seconds = self._typical_epoch(max(seconds - once, 0.0))
        if self._measuring():
            self._decide(trainer, epoch + 1, 0.0, "the first epoch")
        elif self.recheck and self.phase != 1:
            # a few batches miss the validation pass and the epoch's slower stretches: correct
            # the count once, early (too low from 4 batches in the log of
            # benchmarks/results/time_to_accuracy_caltech101_scratch_15m_auto_v2_cpu2.json)
            self.recheck = False
            self._decide(trainer, epoch + 1, 0.0, "the first whole epoch", only_if_changed=True)
        elif self.decided_epochs and self.phase != 1 and epoch + 1 < trainer.plan.epochs:
            self._replan(trainer, epoch)
        # The safety net: an epoch that cannot end in time is not started.
        if epoch + 1 < trainer.plan.epochs and self.epoch_seconds:
            next_epoch = self._cost(trainer, epoch + 1, epoch + 2, trainer.plan.epochs)
            ends = self.elapsed() + next_epoch + self._final_eval(trainer)
            if trainer.dist.any(ends > self.budget * (1 + SPARE)):
                self._stop(trainer, "the next epoch would end past the budget")

    def _typical_epoch(self, seconds: float) -> float:
        """The median of the last three epochs' times (each scaled to the current epoch's image
        size by its side), so one slow epoch (a busy machine) does not cut the count, and the
        run, short."""
        size = self.epoch_size or 1
        self.recent = [*self.recent[-2:], (seconds, size)]
        scaled = sorted(t * size / s for t, s in self.recent)
        return scaled[len(scaled) // 2]

    def _replan(self, trainer: Trainer, epoch: int) -> None:
        """Plan the epochs again from the typical epoch after every epoch: fewer when the ones
        left no longer fit, more when time is left. Epochs drift from the first measurement:
        slower ones, and the safety net alone cuts the run with its rate still high, before the
        last epochs that bring the most accuracy
        (benchmarks/results/time_to_accuracy_caltech101_scratch_15m_auto_v2_cpu2.json); faster
        ones (the first epochs pay for warming up), and a count fixed from them left a quarter of
        a 15-minute budget unused (planned 19 epochs, ended at 670 s of 900 s; issue #26, and
        benchmarks/results/time_to_accuracy_caltech101_scratch_15m_auto_resnet18_half_cpu2.json)."""
        rest = self._cost(trainer, epoch + 1, trainer.plan.epochs)
        late = self.elapsed() + rest + self._final_eval(trainer) > self.budget
        measured = f"epoch {epoch + 1}"
        if trainer.dist.any(late):
            self._decide(trainer, epoch + 1, 0.0, measured, True, most=trainer.plan.epochs)
            return
        resizing = trainer.config.progressive_resize
        if not resizing or (epoch + 1) <= RISING * trainer.plan.epochs:
            self._decide(
                trainer, epoch + 1, 0.0, measured, True,
                least=trainer.plan.epochs, reserve=RESERVE * self.epoch_seconds,
            )  # fmt: skip

    # -- deciding -----------------------------------------------------------------------------
    def _cost(
        self, trainer: Trainer, first: int, end: int, length: int = 0, passes: int | None = None
    ) -> float:
        """Seconds that epochs ``first``..``end - 1`` take in a run of ``length`` (default
        ``end``) epochs. With progressive resizing an epoch's training part is taken to scale
        with its image side, and the sizes depend on the run's length (laid out over all its
        epochs). Not with the area: on a CPU per-image work (batching, augmenting the cached
        squares) weighs as much as the convolutions, so an area model plans too few epochs. The
        cached passes still to compute are counted (``passes`` in turn, default the cache's)."""
        cfg = trainer.config
        if self.epoch_seconds <= 0:
            return math.inf
        cache = epoch_cache(trainer)
        once = cache.pending(first, end, passes) * cache.pass_seconds if cache else 0.0
        if not cfg.progressive_resize or not self.epoch_size:
            return self.epoch_seconds * (end - first) + once
        val = self.eval_per_image * len(trainer.data.rows.get("val", []))
        train = max(self.epoch_seconds - val, 0.0) / self.epoch_size
        sizes = progressive_sizes(length or end, cfg.progressive_min_size, cfg.image_size)
        return sum(train * size + val for size in sizes[first:end]) + once

    def _fitting(
        self, trainer: Trainer, done: int, limit: int, free: float, passes: int | None = None
    ) -> int:
        """The most epochs (``done`` at least, ``limit`` at most) whose cost fits ``free``."""
        fits = done
        while fits < limit and self._cost(trainer, done, fits + 1, passes=passes) <= free:
            fits += 1
        return fits

    def _fitting_passes(self, trainer: Trainer, done: int, limit: int, free: float) -> int:
        """The epochs that fit ``free``; where the cached passes still to compute would cut
        them below PASS_WORTH of what the passes computed allow, the run trains on those
        instead, and says so. A second pass of a head-only run's features took 23 s against
        0.6 s epochs, and the run ended after 1 of its 30 planned epochs (issue #26)."""
        fits = self._fitting(trainer, done, limit, free)
        cache = epoch_cache(trainer)
        if cache is None or not cache.pending(done, max(limit, done + 1)):
            return fits
        computed = max(len(cache.train_passes), 1)
        without = self._fitting(trainer, done, limit, free, passes=computed)
        if fits >= PASS_WORTH * without:
            return fits
        planned, cache.passes = cache.passes, computed
        trainer.emit(
            Message(
                f"time budget {clock(self.budget)}: training on the {cache.passes} cached "
                f"pass{'es' if cache.passes > 1 else ''} computed, not {planned}: another would "
                f"take ~{cache.pass_seconds:.0f} s and leave {fits} epochs instead of {without}"
            )
        )
        return without

    def _final_eval(self, trainer: Trainer) -> float:
        """The final evaluation's cost: each epoch's validation sees one view of an image, the
        final evaluation all of the run's TTA views."""
        rows = trainer.data.rows
        images = len(rows.get("val", [])) + len(rows.get("test", []))
        return self.eval_per_image * images * tta_view_count(trainer.config.tta)

    def _decide(
        self,
        trainer: Trainer,
        done: int,
        left_now: float,
        measured: str,
        only_if_changed: bool = False,
        most: int = 0,
        least: int = 0,
        reserve: float = 0.0,
    ) -> None:
        """Fix the epochs: ``done`` epochs are counted as trained once ``left_now`` seconds
        (the rest of the epoch under way) have passed; between ``least`` and ``most`` epochs
        when given, keeping ``reserve`` seconds of the budget back."""
        cfg = trainer.config
        free = self.budget * (1 - SPARE) - self.elapsed() - left_now - self._final_eval(trainer)
        free -= reserve
        if left_now and trainer.dist.any(free < 0) and trainer.state.history:
            # the epoch under way cannot end in time: its weights would never be judged, so stop
            # now with the best so far rather than train on until the budget cuts it, as in
            # benchmarks/results/time_to_accuracy_caltech101_5m_auto_cpu2.json
            self._stop(trainer, "the epoch under way would end past the budget")
            return
        # the epochs asked for are the most the run trains: a budget ends a run early, it does
        # not stretch one past what its recipe found useful (fine-tuning few images overfits)
        limit = min(trainer.plan.asked_epochs, most) if most else trainer.plan.asked_epochs
        fits = self._fitting_passes(trainer, done, limit, free)
        epochs = max(fits, cfg.head_epochs + 1, done, least)
        epochs = int(trainer.dist.broadcast(epochs))  # every rank trains rank 0's count
        before = trainer.plan.epochs
        if only_if_changed and epochs == before:
            return
        self.decided_epochs, self.decided_phase = epochs, self.phase
        if epochs != before:
            trainer.replan(epochs, self._why())
            if cfg.scheduler in LENGTH_SCHEDULES:
                relay_schedule(trainer)
        self.decision = (
            f"time budget {clock(self.budget)}: {clock(self.elapsed())} spent (decoding "
            f"included), an epoch takes {self.epoch_seconds:.1f}s (from {measured}), so "
            f"{epochs} epochs (asked: {trainer.plan.asked_epochs})"
            + (f", {cfg.scheduler} schedule laid out over them" if epochs != before else "")
        )
        trainer.emit(Message(self.decision))

    def _why(self) -> str:
        return f"{clock(self.budget)} time budget"

    def _stop(self, trainer: Trainer, why: str) -> None:
        if not self.said_stop:
            self.said_stop, self.stop_why = True, why
            trainer.emit(Message(f"time budget {clock(self.budget)}: stopping, {why}"))
        trainer.request_stop(REASON)

    # -- saying why a run ended early -----------------------------------------------------------
    def _hear(self, trainer: Trainer, event: Event) -> None:
        """On the run's Finished event (its final evaluation done): say in one sentence why it
        ended before most of its budget was used, in the log, on the terminal and in
        status.json (``budget_note``), so a short run is not taken for a budget ignored."""
        if isinstance(event, Finished) and not self.note:
            self.note = self.ended_early(trainer, event.reason)
            if self.note:
                trainer.emit(Message(self.note, status_key=BUDGET_NOTE))

    def ended_early(self, trainer: Trainer, reason: str) -> str:
        """``stopped at 62 s of 300 s: validation accuracy did not improve over the last 4
        epochs``; empty when the run used at least USED_ENOUGH of its budget."""
        used = self.elapsed()
        if used >= USED_ENOUGH * self.budget:
            return ""
        spent = f"{used:.0f} s of {self.budget:.0f} s"
        if reason == "early_stopping":
            watched = MONITORS.get(trainer.monitor, trainer.monitor)
            last = trainer.state.bad_epochs
            return f"stopped at {spent}: {watched} did not improve over the last {last} epochs"
        if reason == REASON:
            return f"stopped at {spent}: {self.stop_why}"
        plan = trainer.plan
        if plan.epochs >= plan.asked_epochs:
            asked = plan.asked_epochs
            what = "epoch asked was" if asked == 1 else "epochs asked were"
            return f"ended at {spent}: the {asked} {what} done"
        return (
            f"ended at {spent}: the {plan.epochs} planned epochs were done, and one more "
            f"({self.epoch_seconds:.0f} s an epoch) would have ended past the budget"
        )


MONITORS = {
    "val_acc": "validation accuracy",
    "val_loss": "validation loss",
    "train_loss": "training loss",
}
