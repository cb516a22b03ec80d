"""A search's results in plain words (modelkit.tune.results), on a study built by hand: the
states, the order, the labels, the text table, and the settings of a full run with the best."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from modelkit.config import TrainConfig  # noqa: E402
from modelkit.tune.results import (  # noqa: E402
    best_run,
    best_summary,
    results_rows,
    results_text,
)
from modelkit.tune.search import best_config  # noqa: E402

State = optuna.trial.TrialState
DISTRIBUTIONS = {
    "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
    "batch_size": optuna.distributions.CategoricalDistribution([8, 16, 32]),
    "augmentation": optuna.distributions.FloatDistribution(0.0, 1.0),
}
BASE = TrainConfig(data_dir="data", weights="none", image_size=48, epochs=2, runs_dir="runs")


def _trial(number, state, value=None, reached=(), attrs=None, lr=1e-3, batch=16, aug=0.5):
    params = {"lr": lr, "batch_size": batch, "augmentation": aug}
    config = BASE.replace(lr=lr, batch_size=batch, rotation=20.0 * aug, run_name=f"t-{number}")
    return optuna.trial.create_trial(
        state=state,
        value=value,
        params=params,
        distributions=DISTRIBUTIONS,
        intermediate_values=dict(enumerate(reached)),
        user_attrs={"config": config.to_dict(), "run_dir": f"runs/t-{number}", **(attrs or {})},
    )


@pytest.fixture
def study():
    s = optuna.create_study(study_name="colours", direction="maximize")
    s.add_trial(_trial(0, State.COMPLETE, 0.6, reached=(0.5, 0.6), lr=3e-3))
    s.add_trial(_trial(1, State.PRUNED, reached=(0.2,), attrs={"state": "pruned"}))
    s.add_trial(_trial(2, State.COMPLETE, 0.8, reached=(0.7, 0.8), lr=2e-4, batch=8, aug=0.25))
    s.add_trial(_trial(3, State.FAIL))
    s.add_trial(_trial(4, State.PRUNED, reached=(0.4,), attrs={"state": "stopped"}))
    return s


def test_rows_are_best_first_in_plain_words(study):
    rows = results_rows(study)
    assert [r["Trial"] for r in rows] == [2, 0, 4, 1, 3]
    assert [r["State"] for r in rows] == [
        "finished", "finished", "stopped (the search was stopped)", "stopped early (pruned)",
        "failed",
    ]  # fmt: skip
    assert [r["Best"] for r in rows] == ["★ best", "", "", "", ""]
    assert [r["Validation accuracy"] for r in rows[:2]] == [0.8, 0.6]
    assert rows[3]["Validation accuracy"] == 0.2  # how far a stopped-early trial got
    best = rows[0]
    assert best["Learning rate"] == 2e-4 and best["Batch size"] == 8
    assert best["Augmentation strength (0–1)"] == 0.25
    assert best["Epochs trained"] == 2 and best["Run"] == "t-2"
    assert not any(key in best for key in ("lr", "batch_size", "params", "state"))


def test_the_text_table_is_aligned_with_no_python_dict(study):
    lines = results_text(study)
    assert lines[0].split("  ")[0] == "Best"
    assert "Validation accuracy" in lines[0] and "Learning rate" in lines[0]
    assert lines[1].startswith("★ best") and "2.00e-04" in lines[1] and "0.800" in lines[1]
    assert "stopped early (pruned)" in "\n".join(lines)
    at = lines[0].index("Learning rate")
    assert {line[at:].split()[0] for line in lines[1:]} <= {"2.00e-04", "3.00e-03", "1.00e-03"}
    summary = best_summary(study)
    assert summary[0] == "Best: trial 2, validation accuracy 0.800"
    assert "  Learning rate: 2.00e-04" in summary and "  Batch size: 8" in summary
    assert not any("{" in line for line in lines + summary)


def test_the_full_run_takes_the_best_values_over_the_search_settings(study):
    resolved = best_run(study, {"epochs": 30})
    config = TrainConfig.from_dict(resolved.settings)
    assert (config.lr, config.batch_size, config.rotation) == (2e-4, 8, 5.0)  # the best trial's
    assert (config.image_size, config.weights) == (48, "none")  # what every trial shared
    assert config.epochs == 30 and config.run_name == "best-colours"
    assert resolved.sources["lr"] == "the search's best trial (2)"
    assert resolved.sources["rotation"] == "the search's best trial (2)"
    assert resolved.sources["image_size"] == "the search's own settings"
    assert best_config(study, epochs=30) == config


def test_nothing_to_train_before_a_trial_finishes():
    s = optuna.create_study(direction="maximize")
    s.add_trial(_trial(0, State.PRUNED, reached=(0.3,), attrs={"state": "pruned"}))
    assert best_run(s) is None and best_config(s) is None and best_summary(s) == []
    assert [r["Best"] for r in results_rows(s)] == [""]


def test_the_figures_speak_as_the_table_does(study):
    from studio.search_figures import history_figure, importance_figure

    history = history_figure(study)
    assert history.layout.title.text == "Validation accuracy by trial"
    assert history.layout.yaxis.title.text == "validation accuracy"
    assert {"finished trial", "best so far"} <= {t.name for t in history.data}
    importance = importance_figure(study)
    assert importance is not None and importance.layout.title.text == "Which setting mattered most"
    (bars,) = importance.data
    assert set(bars.y) == {"Learning rate", "Batch size", "Augmentation strength (0–1)"}


def test_a_study_being_created_reads_as_none_not_an_error(tmp_path, monkeypatch):
    """The Tune page reads the study file as soon as it appears, while the search thread may
    still be creating its tables (a locked database): the page shows 'first trial is training'
    instead of an exception."""
    import optuna
    import sqlalchemy.exc

    from modelkit.tune.search import load_study

    (tmp_path / "tune").mkdir()
    (tmp_path / "tune" / "s.db").write_bytes(b"")

    def locked(**_kwargs):
        raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(optuna, "load_study", locked)
    assert load_study("s", tmp_path) is None
