"""What the browser sees between reloads: a fragment with run_every is rerun on its own by the
browser, without the rest of the page. AppTest only runs whole pages, so the ``fragment_timer``
fixture (tests/app/conftest.py) does what the browser's timer does, and says which fragments a
run asked to poll at all (an idle page should ask none: no CPU)."""

from __future__ import annotations

import pytest
from conftest import make_colour_dataset
from helpers import fast_config

pytest.importorskip("optuna")


def _start_search(at, dataset) -> None:
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset))
    next(w for w in at.text_input if w.label == "Study name").set_value("live")
    next(w for w in at.number_input if w.label == "Trials").set_value(2)
    next(w for w in at.number_input if w.label == "Epochs").set_value(1)  # per trial
    next(w for w in at.number_input if w.label == "Image size (px)").set_value(32)
    next(b for b in at.button if "Start search" in b.label).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def test_the_results_appear_when_the_search_ends_without_a_reload(
    open_page, app_dirs, fragment_timer
):
    from app_pages._tune_state import tune_registry

    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    at = open_page("app_pages/tune.py")
    _start_search(at, dataset)
    assert fragment_timer.polled  # while it runs, the page follows it
    job = tune_registry().current
    job.join(300)
    assert job.state == "finished", job.error

    at = fragment_timer.tick(at)  # the page's timer, not a reload
    assert not at.exception
    assert not any("No search yet" in i.value for i in at.info)
    assert any("finished: 2 trial(s)" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert sorted(table["Trial"]) == [0, 1] and set(table["State"]) == {"finished"}
    assert any("Train with the best" in b.label for b in at.button)
    assert fragment_timer.polled == []  # the search is over: the page stops polling


def test_an_idle_page_polls_nothing(open_page, fragment_timer):
    at = open_page("app_pages/tune.py")
    assert not at.exception
    assert any("No search yet" in i.value for i in at.info)
    assert fragment_timer.polled == []  # neither the search view nor the sidebar reruns on a timer


def test_the_sidebar_follows_a_job_then_stops_polling(open_page, app_dirs, fragment_timer):
    from studio.state import job_registry

    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=4)
    at = open_page("app_pages/dataset.py")
    assert fragment_timer.polled == []
    job = job_registry().launch(fast_config(dataset, app_dirs["runs"], image_size=32))
    at.run()
    assert not at.exception
    assert len(fragment_timer.polled) == 1  # the sidebar's status, while the job trains
    job.join(120)
    at = fragment_timer.tick(at)
    assert not at.exception
    assert any(f"Last job {job.name}: finished" in c.value for c in at.sidebar.caption)
    assert fragment_timer.polled == []
