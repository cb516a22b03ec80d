"""What the browser sees between reloads: a fragment with run_every is rerun on its own by the
browser, without the rest of the page. AppTest only runs whole pages, so ``tick`` does what the
browser's timer does (reruns the fragments the last full run asked to poll), and ``polled``
says which fragments that run asked to poll at all (an idle page should ask none: no CPU)."""

from __future__ import annotations

import functools

import pytest
import streamlit.testing.v1.local_script_runner as lsr
from conftest import make_colour_dataset
from helpers import fast_config

pytest.importorskip("optuna")


class Browser:
    """Records each run's auto-rerun requests; ``tick`` reruns the polled fragments only."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.polled: list[str] = []  # fragment ids the last run asked the browser to poll
        parse = lsr.parse_tree_from_messages

        def recording(msgs):
            self.polled = [m.auto_rerun.fragment_id for m in msgs if m.HasField("auto_rerun")]
            return parse(msgs)

        monkeypatch.setattr(lsr, "parse_tree_from_messages", recording)

    def tick(self, at):
        """The fragments' timer firing once: their rerun, not the page's."""
        assert self.polled, "nothing on the page polls"
        queued = functools.partial(
            lsr.RerunData, fragment_id_queue=list(self.polled), is_auto_rerun=True
        )
        with self.monkeypatch.context() as m:
            m.setattr(lsr, "RerunData", queued)
            return at.run()


@pytest.fixture
def browser(monkeypatch) -> Browser:
    return Browser(monkeypatch)


def _start_search(at, dataset) -> None:
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset))
    next(w for w in at.text_input if w.label == "Study name").set_value("live")
    next(w for w in at.number_input if w.label == "Trials").set_value(2)
    next(w for w in at.number_input if w.label == "Epochs").set_value(1)  # per trial
    next(w for w in at.number_input if w.label == "Image size (px)").set_value(32)
    next(b for b in at.button if "Start search" in b.label).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def test_the_results_appear_when_the_search_ends_without_a_reload(open_page, app_dirs, browser):
    from app_pages._tune_state import tune_registry

    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    at = open_page("app_pages/tune.py")
    _start_search(at, dataset)
    assert browser.polled  # while it runs, the page follows it
    job = tune_registry().current
    job.join(300)
    assert job.state == "finished", job.error

    at = browser.tick(at)  # the page's timer, not a reload
    assert not at.exception
    assert not any("No search yet" in i.value for i in at.info)
    assert any("finished: 2 trial(s)" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert sorted(table["Trial"]) == [0, 1] and set(table["State"]) == {"finished"}
    assert any("Train with the best" in b.label for b in at.button)
    assert browser.polled == []  # the search is over: the page stops polling


def test_an_idle_page_polls_nothing(open_page, browser):
    at = open_page("app_pages/tune.py")
    assert not at.exception
    assert any("No search yet" in i.value for i in at.info)
    assert browser.polled == []  # neither the search view nor the sidebar reruns on a timer


def test_the_sidebar_follows_a_job_then_stops_polling(open_page, app_dirs, browser):
    from studio.state import job_registry

    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=4)
    at = open_page("app_pages/dataset.py")
    assert browser.polled == []
    job = job_registry().launch(fast_config(dataset, app_dirs["runs"], image_size=32))
    at.run()
    assert not at.exception
    assert len(browser.polled) == 1  # the sidebar's status, while the job trains
    job.join(120)
    at = browser.tick(at)
    assert not at.exception
    assert any(f"Last job {job.name}: finished" in c.value for c in at.sidebar.caption)
    assert browser.polled == []
