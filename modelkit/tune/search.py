"""Hyper-parameter search with Optuna: each trial is a normal run in the RunStore.

The study lives in SQLite (default ``<runs_dir>/tune/<study>.db``), so a search can be stopped and
continued later (``load_if_exists``). Every trial trains ``tune-<study>-<n>`` with settings
drawn from the search space on top of fixed ones; its run folder is in the trial's user
attributes. A callback (``pruning.TrialPruner``) reports val_acc after every epoch and stops the
run when the median pruner says the trial is hopeless: the trial and its run folder are then
marked pruned, with the epoch.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from modelkit.atomic import atomic_write_json
from modelkit.config import TrainConfig
from modelkit.models.weights import check_starting_weights
from modelkit.training.loop import Trainer, TrainingError
from modelkit.tune.pruning import TrialPruner
from modelkit.tune.space import AUGMENTATION_FIELDS, OPTIONAL, SearchSpace

__all__ = [
    "AUGMENTATION_FIELDS", "OPTIONAL", "SearchSpace", "TuneJob", "best_config", "completed",
    "default_storage", "load_study", "open_study", "run_search", "study_names",
]  # fmt: skip


def default_storage(runs_dir: str | Path, study: str) -> str:
    folder = Path(runs_dir) / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / f'{study}.db').resolve()}"


def open_study(
    study: str,
    storage: str,
    seed: int = 0,
    startup_trials: int = 2,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """The study (made or continued), maximising val_acc; the median pruner unless ``pruner``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    median = optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0)
    return optuna.create_study(
        study_name=study,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner or median,
    )


def run_search(
    base: TrainConfig,
    study: str,
    trials: int | None = 10,
    timeout: float | None = None,
    storage: str | None = None,
    space: SearchSpace | None = None,
    stop: threading.Event | None = None,
    on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None,
    startup_trials: int = 2,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Run ``trials`` more trials (and/or until ``timeout`` seconds) of the study."""
    # once, before any trial: otherwise every trial would fail the same way
    check_starting_weights(base.arch, base.weights)
    space = space or SearchSpace()
    storage = storage or default_storage(base.runs_dir, study)
    stop = stop or threading.Event()
    st = open_study(study, storage, base.seed, startup_trials, pruner)

    def objective(trial: optuna.Trial) -> float:
        if stop.is_set():
            raise optuna.TrialPruned("search stopped")
        cfg = base.replace(**space.suggest(trial), run_name=f"tune-{study}-{trial.number}")
        cfg.validate()
        trial.set_user_attr("config", cfg.to_dict())
        pruner = TrialPruner(trial)
        result = Trainer(cfg, callbacks=[pruner]).fit(stop)  # Stop in the app stops the trial
        if result.state in ("pruned", "stopped"):
            _record_end(trial, study, pruner, result.state)
            raise optuna.TrialPruned(
                f"pruned after epoch {pruner.pruned_epoch}"
                if result.state == "pruned"
                else "search stopped"
            )
        value = result.best.get("val_acc")
        if value is None:
            raise TrainingError("tuning needs a validation split (val_ratio > 0)")
        trial.set_user_attr("state", "complete")
        return float(value)

    def callback(s: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        if on_trial:
            on_trial(t)
        if stop.is_set():
            s.stop()

    st.optimize(
        objective, n_trials=trials, timeout=timeout, callbacks=[callback], catch=(TrainingError,)
    )
    return st


def _record_end(trial: optuna.Trial, study: str, pruner: TrialPruner, state: str) -> None:
    """A trial that did not complete: its state (and the epoch it was pruned at) on the trial
    and in its run folder's tune.json. Optuna marks both pruned and stopped trials PRUNED."""
    trial.set_user_attr("state", state)
    record: dict[str, Any] = {"study": study, "trial": trial.number, "state": state}
    if pruner.pruned_epoch is not None:
        trial.set_user_attr("pruned_at_epoch", pruner.pruned_epoch)
        record["epoch"] = pruner.pruned_epoch
    if pruner.run_dir:
        atomic_write_json(Path(pruner.run_dir) / "tune.json", record)


def best_config(st: optuna.Study, **changes: Any) -> TrainConfig | None:
    """The best completed trial's config (with ``changes``), ready for a full training run;
    composed by ``modelkit.tune.results.best_run`` (the search's settings, the best values)."""
    from modelkit.tune.results import best_run

    resolved = best_run(st, changes)
    return None if resolved is None else TrainConfig.from_dict(resolved.settings)


def completed(st: optuna.Study) -> int:
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in st.trials)


class TuneJob:
    """A search in a background thread; the page reads ``state``/``error`` and the study."""

    def __init__(self, base: TrainConfig, study: str, trials: int | None, timeout: float | None,
                 space: SearchSpace | None = None, storage: str | None = None):  # fmt: skip
        self.base, self.study, self.trials, self.timeout = base, study, trials, timeout
        self.space = space or SearchSpace()
        self.storage = storage or default_storage(base.runs_dir, study)
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.state, self.error, self.trials_done = "running", "", 0
        self.started, self.ended = time.time(), None
        # The caller's context goes with the thread: an app's allowed roots confine each trial.
        ctx = contextvars.copy_context()
        self.thread = threading.Thread(
            target=ctx.run, args=(self._main,), name="modelkit-tune", daemon=True
        )

    def start(self) -> TuneJob:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    @property
    def active(self) -> bool:
        return self.thread.is_alive()

    def _on_trial(self, trial: optuna.trial.FrozenTrial) -> None:
        with self.lock:
            self.trials_done += 1

    def _main(self) -> None:
        try:
            run_search(
                self.base, self.study, self.trials, self.timeout, self.storage, self.space,
                self.stop_event, self._on_trial,
            )  # fmt: skip
            state, error = ("stopped" if self.stop_event.is_set() else "finished"), ""
        except Exception as exc:  # noqa: BLE001 - shown on the page, never re-raised
            state, error = "failed", f"{type(exc).__name__}: {exc}"
        with self.lock:
            self.state, self.error, self.ended = state, error, time.time()


def study_names(storage_dir: str | Path) -> list[str]:
    """Studies saved under ``<runs_dir>/tune`` (one SQLite file each)."""
    folder = Path(storage_dir)
    return sorted(p.stem for p in folder.glob("*.db")) if folder.is_dir() else []


def load_study(study: str, runs_dir: str | Path) -> optuna.Study | None:
    path = Path(runs_dir) / "tune" / f"{study}.db"
    if not path.is_file():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study, storage=f"sqlite:///{path.resolve()}")
    except KeyError:
        return None
    except Exception as exc:  # noqa: BLE001 - the search thread may be creating its tables now
        # (the page reads the file as soon as it appears); its next poll reads it again
        if "sqlalchemy" in type(exc).__module__ or isinstance(exc, RuntimeError):
            return None
        raise
