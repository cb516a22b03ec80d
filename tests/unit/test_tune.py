"""Optuna search end to end on tiny data: 2 trials of 1 epoch, runs in the RunStore, SQLite."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from modelkit.cli.main import main  # noqa: E402
from modelkit.runs.store import RunStore, load_run, read_json, read_metrics  # noqa: E402
from modelkit.tune.pruning import TrialPruner  # noqa: E402
from modelkit.tune.results import results_rows  # noqa: E402
from modelkit.tune.search import (  # noqa: E402
    SearchSpace,
    best_config,
    load_study,
    study_names,
)
from studio.search_figures import history_figure, importance_figure  # noqa: E402


@pytest.fixture(scope="module")
def searched(tmp_path_factory, helpers):
    base = tmp_path_factory.mktemp("tune")
    data = helpers.write_dataset(base / "data")
    runs = base / "runs"
    code = main(
        ["tune", str(data), "--trials", "2", "--epochs", "1", "--study", "tiny",
         "--weights", "none", "--image-size", "32", "--device", "cpu", "--precision", "fp32",
         "--runs-dir", str(runs)]
    )  # fmt: skip
    return code, runs


def test_search_runs_trials_as_runs_and_stores_the_study(searched, capsys):
    code, runs = searched
    assert code == 0
    assert (runs / "tune" / "tiny.db").is_file() and study_names(runs / "tune") == ["tiny"]
    study = load_study("tiny", runs)
    assert len(study.trials) == 2
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    names = sorted(p.name for p in runs.iterdir() if p.name != "tune")
    assert len(names) == 2 and all("tune-tiny-" in n for n in names)
    for t in study.trials:
        assert Path(t.user_attrs["run_dir"]).is_dir()
        assert set(t.params) == {"lr", "weight_decay", "batch_size"}
        assert t.intermediate_values  # val_acc reported per epoch
    assert {r.state for r in RunStore(runs).list()} == {"finished"}
    rows = results_rows(study)
    assert sorted(r["Trial"] for r in rows) == [0, 1] and rows[0]["Run"]
    cfg = best_config(study, epochs=5)
    assert cfg.epochs == 5 and cfg.run_name == "best-tiny" and cfg.lr == study.best_params["lr"]
    assert history_figure(study).data
    fig = importance_figure(study)
    assert fig is None or fig.data


def test_search_resumes_the_same_study(searched, helpers, tmp_path):
    from modelkit.tune.search import run_search

    _, runs = searched
    data = helpers.write_dataset(tmp_path / "data")
    base = helpers.fast_config(data, runs, epochs=1)
    stop = threading.Event()
    stop.set()  # a stopped search starts no training
    study = run_search(base, "tiny", trials=1, stop=stop)
    assert len(study.trials) == 3 and study.trials[-1].state == optuna.trial.TrialState.PRUNED


def test_pruned_trial_stops_its_run():
    class FakeTrial:
        def __init__(self):
            self.reports, self.attrs = [], {}

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return True

        def set_user_attr(self, k, v):
            self.attrs[k] = v

    class FakeTrainer:
        run_dir, stop_reason = Path("runs/x"), ""

        def request_stop(self, reason):
            self.stop_reason = reason

    trial, trainer = FakeTrial(), FakeTrainer()
    pruner = TrialPruner(trial)
    pruner.setup(trainer)
    pruner.on_epoch_end(trainer, 0, {"val_loss": 1.0})  # no val_acc: nothing to report
    assert trial.reports == [] and not trainer.stop_reason
    pruner.on_epoch_end(trainer, 0, {"val_acc": 0.5})
    assert trial.reports == [(0, 0.5)] and trainer.stop_reason == "pruned"
    assert pruner.pruned_epoch == 1 and trial.attrs["run_dir"] == str(Path("runs/x"))


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_a_pruned_trial_is_recorded_as_pruned_with_its_epoch(helpers, tmp_path):
    """Not 'stopped': the run's status, its tune.json and the trial say pruned, after epoch 1."""
    from modelkit.tune.search import run_search

    data = helpers.write_dataset(tmp_path / "data")
    base = helpers.fast_config(data, tmp_path / "runs", epochs=3)
    study = run_search(base, "pruned", trials=1, pruner=_AlwaysPrune())
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["state"] == "pruned" and trial.user_attrs["pruned_at_epoch"] == 1
    run_dir = Path(trial.user_attrs["run_dir"])
    assert load_run(run_dir).state == "pruned"
    assert [row["epoch"] for row in read_metrics(run_dir)] == [1]
    assert read_json(run_dir / "tune.json") == {
        "study": "pruned", "trial": 0, "state": "pruned", "epoch": 1,
    }  # fmt: skip
    log = (run_dir / "log.txt").read_text()
    assert "pruned after epoch 1" in log and "stopped by request" not in log


def test_optional_search_dimensions():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    s = SearchSpace(extra=("optimizer", "dropout", "augmentation")).suggest(trial)
    assert {"optimizer", "head_dropout", "rotation", "crop_scale_min"} <= set(s)
    from modelkit.config import ConfigError

    with pytest.raises(ConfigError, match="unknown"):
        SearchSpace(extra=("momentum",))
