"""AppTest for the Tune page: empty state, a search started from the page in the background,
the trials table in plain words and figures, and training with the best settings, which takes
the person to the Train page's live view."""

from __future__ import annotations

import pytest
from conftest import make_colour_dataset

pytest.importorskip("optuna")


def test_tune_page_without_studies(open_page):
    at = open_page("app_pages/tune.py")
    assert not at.exception
    assert any("No search yet" in i.value for i in at.info)
    assert any("Start search" in b.label for b in at.button)


def test_the_search_budget_is_typed_as_on_the_train_page(open_page, app_dirs):
    from app_pages._tune_state import tune_registry

    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    at = open_page("app_pages/tune.py")
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset))
    budget = next(w for w in at.text_input if w.label == "Search time budget")
    assert not [w for w in at.number_input if "minutes" in w.label]  # one unit style: 10m
    budget.set_value("ten minutes")
    next(b for b in at.button if "Start search" in b.label).click().run()
    assert any("'ten minutes' is not a time budget" in e.value for e in at.error)
    assert tune_registry().current is None  # nothing started


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
    assert sorted(table["Trial"]) == [0, 1] and set(table["State"]) == {"finished"}
    # best first, marked, each searched setting under the form's label; no Optuna dict
    assert list(table["Validation accuracy"]) == sorted(table["Validation accuracy"])[::-1]
    assert list(table["Best"]) == ["★ best", ""]
    assert {"Learning rate", "Weight decay", "Batch size"} <= set(table.columns)
    assert not any("{" in m.value for m in at.markdown)
    assert any("Best: trial" in m.value and "Learning rate" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 1
    next(w for w in at.number_input if w.label == "Epochs for the full run").set_value(1)
    next(b for b in at.button if "Train with the best" in b.label).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    train_job = job_registry().current
    assert train_job is not None and train_job.config.run_name == "best-page"
    best = table.iloc[0]
    assert train_job.config.lr == best["Learning rate"] and train_job.config.epochs == 1
    assert train_job.config.image_size == 32  # the search's own settings under the best ones
    # the person is taken to the Train page, where the run shows live
    assert at.header[0].value == "Train"
    assert any(h.value.startswith("Run ") for h in at.subheader)  # its live view
    assert any(m.label == "State" for m in at.metric)
    train_job.join(120)
