"""``auto``'s winner trained longer in the time its run left: a run that did every epoch it asked
for, well inside its budget, is trained again with as many more epochs after its head epochs as
the time left fits (four times them at most, one and a half times at least), on the same data
and splits, and the person gets whichever validates better (a tie keeps the shorter). Not twice
and twice again: each longer run pays for the whole run again, so a doubling that won left too
little for the next, and fruit_contours ended at 65% of a 5-minute budget after one
(benchmarks/results/suite_5m_auto_fill_cpu2.json). A longer run that does not validate better
shows the run had converged, and the run's status says so.

Where the run again does not fit (on cached maps, the maps are most of a short run) the winner
is continued instead: its best weights, the epochs added, at its fine-tuning rates over
``CONTINUE_LR_SHARE`` (a warm restart, not the first run's peak), paying only its setup and the
added epochs again. Both reuse the winner's stage maps (``training.kept_maps``), so neither is
charged the seconds the winner spent computing them.

Measured, not read off the curve: on the suite, runs whose last third of epochs had not
improved validated better with twice the epochs on one set and the same on the others
(benchmarks/results/converged_epochs_cpu2.json), so a flat tail is no proof of convergence.
"""

from __future__ import annotations

import math
from pathlib import Path

from modelkit.config import TrainConfig

LONGEST = 4  # the longer run trains at most this many times the epochs after the head epochs
SLACK = 1.2  # what an added epoch is expected to take, against the winner's typical epoch
MIN_GROWTH = 1.5  # fewer epochs after the head than this many times the winner's: not worth a run
MAX_LONGER_RUNS = 2  # a second where the first won and was held back by LONGEST, not the time
CONTINUE_LR_SHARE = 3.0  # a continued run's rates: its fine-tuning rates divided by this


def did_every_epoch(run_dir: Path, asked: int) -> bool:
    """Whether ``run_dir`` trained all ``asked`` epochs (not cut short by its budget or a
    stop, where more epochs were not what it lacked) with a validation accuracy for each."""
    from modelkit.runs.metrics_log import read_metrics

    scores = [row.get("val_acc") for row in read_metrics(run_dir)]
    return bool(scores) and len(scores) >= asked and all(s is not None for s in scores)


def typical_epoch_s(run_dir: Path, fallback: float) -> float:
    """The median training seconds of ``run_dir``'s last epochs (its metrics), or ``fallback``
    where they were not recorded. Not the run's seconds over its epochs: decoding and cached
    passes are paid once, and on cached maps they are most of a run."""
    from modelkit.runs.metrics_log import read_metrics

    seconds = sorted(
        float(row["epoch_seconds"])
        for row in read_metrics(run_dir)[-5:]
        if isinstance(row.get("epoch_seconds"), (int, float))
    )
    return seconds[len(seconds) // 2] if seconds else fallback


def longer_config(config: TrainConfig, run: Path, run_s: float, left_s: float):
    """(the longer run's TrainConfig, "") where ``run`` (trained with ``config`` in ``run_s``
    seconds) did every epoch asked and ``left_s`` seconds fit the run again with more epochs
    after its head (as many as fit, ``LONGEST`` times at most and ``MIN_GROWTH`` times at
    least), or else its continuation (``continued_config``) with as many more; else (None, why
    not, or "" where there is nothing to say)."""
    if not did_every_epoch(run, config.epochs):
        return None, ""
    from modelkit.training.kept_maps import kept_seconds

    head = config.head_epochs if config.head_epochs < config.epochs else 0
    rest = config.epochs - head
    typical = typical_epoch_s(run, run_s / max(config.epochs, 1))  # one read a decision
    maps_s = min(kept_seconds(), run_s)  # the winner's stage maps: kept, not computed again

    def again(epochs: int) -> float:  # the run again, and the epochs it adds
        return run_s - maps_s + SLACK * typical * (epochs - config.epochs)

    def resumed(added: int) -> float:  # what it spent outside its epochs, and the epochs added
        return max(run_s - maps_s - typical * config.epochs, 0.0) + SLACK * typical * added

    least = head + math.ceil(MIN_GROWTH * rest)
    if again(least) <= left_s:
        epochs = _most_that_fit(again, least, head + LONGEST * rest, left_s)
        settings = config.to_dict()
        name = f"{config.run_name}-longer" if config.run_name else ""
        settings.update(epochs=epochs, time_budget=round(left_s, 1), run_name=name)
        return TrainConfig.from_dict(settings), ""
    fewest = least - config.epochs
    if resumed(fewest) <= left_s:
        added = _most_that_fit(resumed, fewest, (LONGEST - 1) * rest, left_s)
        return continued_config(config, run, added, left_s), ""
    return None, (
        f"not trained longer: {least} epochs would need ~{again(least):.0f} s, {fewest} more "
        f"from its weights ~{resumed(fewest):.0f} s, and {left_s:.0f} s are left"
    )


def _most_that_fit(cost, least: int, most: int, left_s: float) -> int:
    """The most epochs from ``least`` to ``most`` whose ``cost`` fits ``left_s`` (``least``
    where none does: the caller checked that it fits)."""
    epochs = most
    while epochs > least and cost(epochs) > left_s:
        epochs -= 1
    return epochs


def continued_config(config: TrainConfig, run: Path, added: int, left_s: float) -> TrainConfig:
    """The TrainConfig that continues ``run`` (trained with ``config``) from its best weights
    for ``added`` epochs in ``left_s`` seconds: one phase at its fine-tuning rates over
    ``CONTINUE_LR_SHARE``, at its full image size from the first epoch (its weights are past
    small sizes)."""
    from modelkit.training.phases import rates

    two_phase = 0 < config.head_epochs < config.epochs
    lr, backbone_lr = rates(config, 2 if two_phase else 0)
    settings = config.to_dict()
    settings.update(
        weights=str(run), head_epochs=0, epochs=added, warmup_epochs=0,
        progressive_resize=False, lr=lr / CONTINUE_LR_SHARE, time_budget=round(left_s, 1),
        backbone_lr=None if backbone_lr is None else backbone_lr / CONTINUE_LR_SHARE,
        run_name=f"{config.run_name}-continued" if config.run_name else "",
    )  # fmt: skip
    return TrainConfig.from_dict(settings)
