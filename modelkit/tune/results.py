"""A search's results in plain words, for the Tune page and ``modelkit tune`` alike.

Optuna speaks of COMPLETE and PRUNED trials and of ``best_params``; a person asks which settings
gave the best validation accuracy and what became of the other trials. So a trial is one row:
what became of it, its validation accuracy, each searched setting under the label the Train form
gives it, best first. The full run with the best trial's settings is composed by the one settings
resolver, so its log can say where each value came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from modelkit.config import schema
from modelkit.recipes import Resolved, resolve
from modelkit.tune.space import AUGMENTATION_FIELDS

TrialState = optuna.trial.TrialState

BEST_MARK = "★ best"
PRUNED_WORDS = "stopped early (pruned)"  # the median pruner found it behind the trials before it
STATE_WORDS = {
    TrialState.COMPLETE: "finished",
    TrialState.PRUNED: PRUNED_WORDS,
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}
STOPPED_WORDS = "stopped (the search was stopped)"  # Optuna files these under PRUNED too
AUGMENTATION_LABEL = "Augmentation strength (0–1)"  # one knob: crop, rotation, colour together
ACCURACY = "Validation accuracy"
NOTE = (
    "Each trial is a short training run with the settings in its row. A trial 'stopped early "
    "(pruned)' was ended after an epoch because its validation accuracy was below the median "
    "of the trials before it at that epoch (Optuna's median pruner), which saves the time."
)


def setting_label(name: str) -> str:
    """The label the Train form shows for a searched setting, so the table and the form agree."""
    if name == "augmentation":
        return AUGMENTATION_LABEL
    return next((s.label for s in schema() if s.name == name), name)


def trial_state(trial: optuna.trial.FrozenTrial) -> str:
    """What became of a trial, in words (a stopped search's last trial is not 'pruned')."""
    if trial.state == TrialState.PRUNED and trial.user_attrs.get("state") == "stopped":
        return STOPPED_WORDS
    return STATE_WORDS.get(trial.state, trial.state.name.lower())


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The finished trial with the highest validation accuracy (None before any finished)."""
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _accuracy(trial: optuna.trial.FrozenTrial) -> float | None:
    """A finished trial's value; else the best epoch it reached before it ended."""
    if trial.value is not None:
        return float(trial.value)
    reached = trial.intermediate_values.values()
    return float(max(reached)) if reached else None


def results_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial, best first: finished trials by validation accuracy, then the others
    (stopped early, failed, running) by what they reached. Columns: the best mark, trial
    number, state, validation accuracy, one per searched setting (by its form label), epochs
    trained, seconds and the trial's run folder name."""
    best = best_trial(study)
    params = list(dict.fromkeys(p for t in study.trials for p in t.params))

    def order(t: optuna.trial.FrozenTrial) -> tuple:
        acc = _accuracy(t)
        return (t.state != TrialState.COMPLETE, acc is None, -(acc or 0.0), t.number)

    rows = []
    for t in sorted(study.trials, key=order):
        seconds = (
            round((t.datetime_complete - t.datetime_start).total_seconds())
            if t.datetime_complete and t.datetime_start
            else None
        )
        row: dict[str, Any] = {
            "Best": BEST_MARK if best is not None and t.number == best.number else "",
            "Trial": t.number,
            "State": trial_state(t),
            ACCURACY: _accuracy(t),
        }
        row.update({setting_label(p): t.params.get(p) for p in params})
        row.update(
            {
                "Epochs trained": len(t.intermediate_values),
                "Seconds": seconds,
                "Run": Path(t.user_attrs.get("run_dir", "")).name,
            }
        )
        rows.append(row)
    return rows


def format_value(value: Any) -> str:
    """A cell as text: rates in scientific notation, accuracies to 3 places, nothing as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-2 else f"{value:.3f}"
    return str(value)


def results_text(study: optuna.Study) -> list[str]:
    """The rows as an aligned plain-text table (the command line's output), header first."""
    rows = results_rows(study)
    if not rows:
        return []
    columns = list(rows[0])
    cells = [columns] + [[format_value(r[c]) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]


def tuned_settings(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The TrainConfig settings the search chose for ``trial``, as that trial trained with them
    (the augmentation strength stands for the five augmentation settings it drove)."""
    config = trial.user_attrs.get("config", {})
    names: list[str] = []
    for p in trial.params:
        names += list(AUGMENTATION_FIELDS) if p == "augmentation" else [p]
    return {n: config[n] if n in config else trial.params[n] for n in names}


def best_summary(study: optuna.Study) -> list[str]:
    """The best trial in words, one searched setting a line; empty before any trial finished."""
    best = best_trial(study)
    if best is None:
        return []
    lines = [f"Best: trial {best.number}, {ACCURACY.lower()} {best.value:.3f}"]
    lines += [f"  {setting_label(p)}: {format_value(v)}" for p, v in best.params.items()]
    return lines


def best_run(study: optuna.Study, given: dict[str, Any] | None = None) -> Resolved | None:
    """The settings of a full training run with the best trial's values, or None before any
    trial finished: the search's own settings (what every trial shared: dataset, model, image
    size…) first, the best trial's searched values over them, then ``given`` (the full run's
    epochs) over all. The run is named ``best-<study>``."""
    best = best_trial(study)
    if best is None:
        return None
    base = {k: v for k, v in best.user_attrs["config"].items() if k != "run_name"}
    return resolve(
        "none",
        {"run_name": f"best-{study.study_name}", **(given or {})},
        start=base,
        start_source="the search's own settings",
        suggested=tuned_settings(best),
        suggested_source=f"the search's best trial ({best.number})",
        check_weights=False,  # the trials trained with them; the launch checks the paths
    )
