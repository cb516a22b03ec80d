"""AppTest for the Tune page: empty state, a search started from the page in the background,
the trials table and figures, and training with the best parameters."""

from __future__ import annotations

import pytest
from conftest import make_colour_dataset

pytest.importorskip("optuna")


def test_tune_page_without_studies(open_page):
    at = open_page("app_pages/tune.py")
    assert not at.exception
    assert any("No search yet" in i.value for i in at.info)
    assert any("Start search" in b.label for b in at.button)


def test_search_from_the_page_then_train_the_best(open_page, app_dirs):
    from app_pages._tune_state import tune_registry
    from studio.state import job_registry

    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    at = open_page("app_pages/tune.py")
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset))
    next(w for w in at.text_input if w.label == "Study name").set_value("page")
    next(w for w in at.number_input if w.label == "Trials").set_value(2)
    next(w for w in at.number_input if w.label == "Epochs").set_value(1)  # per trial
    next(w for w in at.number_input if w.label == "Image size (px)").set_value(32)
    next(b for b in at.button if "Start search" in b.label).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = tune_registry().current
    job.join(300)
    assert job.state == "finished", job.error
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["trial"]) == [0, 1] and set(table["state"]) == {"complete"}
    assert len(at.get("plotly_chart")) >= 1
    next(w for w in at.number_input if w.label == "Epochs for the full run").set_value(1)
    next(b for b in at.button if "Train with the best" in b.label).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    train_job = job_registry().current
    assert train_job is not None and train_job.config.run_name == "best-page"
    train_job.join(120)
