"""``auto``'s use of the time its winner left: where its race found that averaging its two
finalists beats the winner on the held-out training images, the runner-up is trained too, on
the same data and splits, in the time left, and the two become one ensemble run
(``modelkit.runs.ensemble``), which is the run a person gets.

The decision is the race's, made on training images the run never judges itself by: the
person's validation split stays untouched, so the ensemble's reported accuracy is as honest as
a single run's. Without a race that says so, or with too little time left, nothing happens and
the winner is the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from modelkit.config import TrainConfig
from modelkit.config.defaults import config_defaults

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
    """Train the race's runner-up in the time the winner's run left of its budget (it took
    ``spent_s``) and return the ensemble run of the two; return ``first`` (the winner's run)
    when the run had no budget, the race did not ask for it, too little time is left, or the
    second run did not finish."""
    from modelkit.runs.ensemble import EnsembleError, build_ensemble_run
    from modelkit.training.loop import Trainer, TrainingError

    if not config.time_budget:
        return first
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
    try:
        result = Trainer(second, list(listeners)).fit(stop)
    except TrainingError as exc:
        say(f"the second model failed ({str(exc).splitlines()[0]}): the winner is the run")
        return first
    if result.state != "finished":
        say(f"the second model {result.state}: the winner is the run")
        return first
    try:
        name = _suffixed(config.run_name, "ensemble")
        ensemble = build_ensemble_run([first, result.run_dir], first.parent, name)
    except EnsembleError as exc:
        say(f"no ensemble ({exc}): the winner is the run")
        return first
    accs = [_val_acc(run) for run in (first, result.run_dir, ensemble)]
    say(
        f"ensemble of {first.name} (val {accs[0]}) and {result.run_dir.name} (val {accs[1]}): "
        f"{ensemble.name}, val {accs[2]} ({time.perf_counter() - started:.0f} s for the second "
        "model and the ensemble)"
    )
    return ensemble


def _val_acc(run_dir: Path) -> str:
    """The run's best validation accuracy as status.json has it, for the log line."""
    from modelkit.runs.metrics_log import recorded_best

    acc = recorded_best(run_dir).get("val_acc")
    return f"{acc:.3f}" if isinstance(acc, (int, float)) else "?"
