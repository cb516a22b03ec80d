"""``auto``'s use of the time its winner left. First the winner may train longer
(``recipes.longer``: more epochs in the time left, kept where it validates better). Then,
where its race found that averaging its two finalists beats the winner on the held-out
training images, the runner-up is trained too, on the same data and splits, in the time left,
and the two become one ensemble run (``modelkit.runs.ensemble``), which is the run a person gets.

The race decides on held-out training images; the longer run is kept by validation accuracy,
as every run chooses its best epoch, so like a best epoch it leans the reported validation
accuracy up a little (a test split is untouched). Without a budget, a race that asks, or the
time, nothing happens and the winner is the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from modelkit.config import TrainConfig
from modelkit.config.defaults import config_defaults
from modelkit.events import Message
from modelkit.runs.folder import budget_note
from modelkit.runs.metrics_log import recorded_val_acc
from modelkit.runs.recorder import RunRecorder
from modelkit.training.callbacks.time_budget import BUDGET_NOTE

MIN_LEFT_SHARE = 0.25  # of the run's budget: less left than this, a second model is not trained
MIN_LEFT_S = 20.0  # seconds: below this no run gets past its first epoch


def second_config(config: TrainConfig, race: dict[str, Any] | None, left_s: float):
    """The runner-up's TrainConfig, in ``left_s`` seconds, where ``race`` (auto_search.json's
    ``race``) found the finalists' average better than its winner and enough time is left;
    else (None, why not) for the log."""
    ensemble = (race or {}).get("ensemble") or {}
    if not ensemble.get("helps"):
        return None, ""
    budget = float(config.time_budget or 0.0)
    if left_s < max(MIN_LEFT_SHARE * budget, MIN_LEFT_S):
        return None, (
            f"no second model: the race found two averaged better, but {left_s:.0f} s of "
            f"{budget:.0f} s are left"
        )
    paths = {p["name"]: p for p in race.get("paths", [])}
    won, other = (paths.get(name) for name in ensemble["paths"][:2])
    if won is None or other is None:
        return None, ""
    settings, default = config.to_dict(), config_defaults()
    base = race.get("base_settings") or {}
    for name in won.get("changes", {}):  # back to what auto chose before the race
        settings[name] = base.get(name, default[name])
    settings.update(other.get("changes", {}))
    settings.update(time_budget=round(left_s, 1), run_name=_suffixed(config.run_name, "second"))
    return TrainConfig.from_dict(settings), ""


def _suffixed(name: str, suffix: str) -> str:
    return f"{name}-{suffix}" if name else ""


def spend_what_is_left(
    first: Path,
    config: TrainConfig,
    race: dict[str, Any] | None,
    spent_s: float,
    stop: Any = None,
    listeners: Iterable[Callable] = (),
    say: Callable[[str], None] = lambda line: None,
) -> Path:
    """Use the time the winner's run left of its budget (it took ``spent_s``): train it longer
    where it did every epoch asked and a longer run validates better (``recipes.longer``),
    then train the race's runner-up where the race found two averaged better, and return the
    run a person gets: the winner, its longer run, or the ensemble of either with the
    runner-up. The winner's run stays the answer when the run had no budget, nothing asked for
    more, too little time is left, or a run failed."""
    if not config.time_budget:
        return first
    started = time.perf_counter()
    first = _train_longer(first, config, spent_s, stop, listeners, say)
    if stop is not None and stop.is_set():  # stopped during the longer run: nothing more
        return first
    spent_s += time.perf_counter() - started
    return _with_runner_up(first, config, race, spent_s, stop, listeners, say)


def _train_longer(first: Path, config: TrainConfig, spent_s: float, stop, listeners, say) -> Path:
    """The winner, or its longer run where one validates better (``recipes.longer``): again
    while the longer run wins and the time left fits one; the run kept says in its status
    why it ended before its budget when a longer run did not validate better."""
    from modelkit.recipes.longer import MAX_LONGER_RUNS, longer_config

    run, run_config, run_s = first, config, spent_s
    for _ in range(MAX_LONGER_RUNS):
        left_s = config.time_budget - spent_s
        longer, why_not = longer_config(run_config, run, run_s, left_s)
        if longer is None:
            if why_not:
                say(why_not)
                _add_to_budget_note(run, why_not)
            return run
        # from a winner's weights (longer.continued_config), or trained again from the start
        continued = longer.weights != config.weights
        how = (
            "continuing the winner from its weights for"
            if continued
            else "training the winner again with"
        )
        say(
            f"{how} {longer.epochs}{' more' if continued else ''} epochs (it did all "
            f"{run_config.epochs} in {run_s:.0f} s; {left_s:.0f} s are left)"
        )
        started = time.perf_counter()
        trained = _train(longer, stop, listeners, say)
        took = time.perf_counter() - started
        spent_s += took
        if trained is None:
            return run
        before, after = recorded_val_acc(run), recorded_val_acc(trained)
        versus = f"{_shown(after)} against {_shown(before)}"
        if after is None or (before is not None and after <= before):
            tried = f"{longer.epochs} {'more epochs from its weights' if continued else 'epochs'}"
            note = (
                f"converged: {tried} did not validate better than {run_config.epochs} "
                f"({versus}); auto used {spent_s:.0f} s of {config.time_budget:.0f} s"
            )
            say(note)
            RunRecorder(run)(Message(note, status_key=BUDGET_NOTE))
            return run
        kind = "continued" if continued else "longer"
        say(f"the {kind} run validates better ({versus}): it is the run")
        run, run_config, run_s = trained, longer, took
    why = f"not trained longer: {MAX_LONGER_RUNS} longer runs, each better, are the most auto tries"
    say(why)
    _add_to_budget_note(run, why)
    return run


def _add_to_budget_note(run: Path, why: str) -> None:
    """Add ``why`` to the reason ``run`` gave for ending before its budget, where it gave one:
    that the epochs asked were done is half the story when more did not fit the time left."""
    note = budget_note(run)
    if note:
        RunRecorder(run)(Message(f"{note}; {why}", status_key=BUDGET_NOTE))


def _train(config: TrainConfig, stop: Any, listeners: Iterable[Callable], say) -> Path | None:
    """The finished run of ``config``, or None (and the log says why)."""
    from modelkit.training.loop import Trainer, TrainingError

    try:
        result = Trainer(config, list(listeners)).fit(stop)
    except TrainingError as exc:
        say(f"it failed ({str(exc).splitlines()[0]}): the winner is the run")
        return None
    if result.state != "finished":
        say(f"it {result.state}: the winner is the run")
        return None
    return result.run_dir


def _with_runner_up(
    first: Path, config: TrainConfig, race, spent_s: float, stop, listeners, say
) -> Path:
    """The ensemble of ``first`` and the race's runner-up trained in the time left, where the
    race asks for it and it can be had; else ``first``."""
    from modelkit.runs.ensemble import EnsembleError, build_ensemble_run

    started, left_s = time.perf_counter(), config.time_budget - spent_s
    second, why_not = second_config(config, race, left_s)
    if second is None:
        if why_not:
            say(why_not)
        return first
    names = " and ".join((race or {})["ensemble"]["paths"][:2])
    say(
        f"training the race's runner-up too ({names} averaged beat the winner on held-out "
        f"training images), in the {left_s:.0f} s left"
    )
    runner_up = _train(second, stop, listeners, say)
    if runner_up is None:
        return first
    try:
        name = _suffixed(config.run_name, "ensemble")
        ensemble = build_ensemble_run([first, runner_up], first.parent, name)
    except EnsembleError as exc:
        say(f"no ensemble ({exc}): the winner is the run")
        return first
    accs = [_shown(recorded_val_acc(run)) for run in (first, runner_up, ensemble)]
    say(
        f"ensemble of {first.name} (val {accs[0]}) and {runner_up.name} (val {accs[1]}): "
        f"{ensemble.name}, val {accs[2]} ({time.perf_counter() - started:.0f} s for the second "
        "model and the ensemble)"
    )
    _say_why_members_ended(ensemble, [first, runner_up], say)
    return ensemble


def _say_why_members_ended(ensemble: Path, members: list[Path], say) -> None:
    """The ensemble run's status gets its members' reasons for ending before their budgets,
    so a run that ends early says why wherever the run is read (the suite's table included),
    not only in the members' folders."""
    said = {run.name: budget_note(run) for run in members}  # one read of each status
    notes = [f"{name}: {note}" for name, note in said.items() if note]
    if notes:
        note = "members ended before their budgets; " + "; ".join(notes)
        say(note)
        RunRecorder(ensemble)(Message(note, status_key=BUDGET_NOTE))


def _shown(acc: float | None) -> str:
    """A recorded validation accuracy for the log line."""
    return "?" if acc is None else f"{acc:.3f}"
