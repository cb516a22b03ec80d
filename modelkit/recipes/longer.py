"""``auto``'s winner trained longer in the time its run left: a run that did every epoch it asked
for, well inside its budget, is trained again with twice the epochs after its head epochs, on
the same data and splits, and the person gets whichever validates better (a tie keeps the
shorter). Doubling goes on while the longer run wins and its double fits in the time left; the
first that does not validate better shows the run had converged, and the run's status says so.

Measured, not read off the curve: on the suite, runs whose last third of epochs had not
improved validated better with twice the epochs on one set and the same on the others
(benchmarks/results/converged_epochs_cpu2.json), so a flat tail is no proof of convergence.
"""

from __future__ import annotations

from pathlib import Path

from modelkit.config import TrainConfig

LONGER = 2  # the longer run trains this many times the epochs after the head epochs
SLACK = 1.2  # what the longer run is expected to take, against the winner's seconds scaled
MAX_DOUBLINGS = 2  # 22 epochs become 44, then 88 at most


def did_every_epoch(run_dir: Path, asked: int) -> bool:
    """Whether ``run_dir`` trained all ``asked`` epochs (not cut short by its budget or a
    stop, where more epochs were not what it lacked) with a validation accuracy for each."""
    from modelkit.runs.metrics_log import read_metrics

    scores = [row.get("val_acc") for row in read_metrics(run_dir)]
    return bool(scores) and len(scores) >= asked and all(s is not None for s in scores)


def longer_config(config: TrainConfig, run: Path, run_s: float, left_s: float):
    """(the longer run's TrainConfig, "") where ``run`` (trained with ``config`` in ``run_s``
    seconds) did every epoch asked and ``left_s`` seconds fit twice them; else (None, why not,
    or "" where there is nothing to say)."""
    if not did_every_epoch(run, config.epochs):
        return None, ""
    head = config.head_epochs if config.head_epochs < config.epochs else 0
    epochs = head + LONGER * (config.epochs - head)
    needed = SLACK * run_s * epochs / config.epochs
    if left_s < needed:
        return None, (
            f"not trained longer: {epochs} epochs would need ~{needed:.0f} s and "
            f"{left_s:.0f} s are left"
        )
    settings = config.to_dict()
    name = f"{config.run_name}-longer" if config.run_name else ""
    settings.update(epochs=epochs, time_budget=round(left_s, 1), run_name=name)
    return TrainConfig.from_dict(settings), ""
