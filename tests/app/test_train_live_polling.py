"""An idle Train page costs no CPU: its live view asks the browser to rerun it on a timer only
while a job runs, and when the job ends it draws the page once more, without the timer.
``polled`` records which fragments a run asked the browser to poll; ``tick`` does what the
browser's timer does (reruns those fragments only)."""

from __future__ import annotations

from helpers import FakeJob
from streamlit.testing.v1 import AppTest

from modelkit.jobs import LiveView
from tests.app.conftest import FragmentTimer


def draw_live_view() -> None:
    from app_pages._train_live import live_view

    live_view()


def test_an_idle_train_page_asks_for_no_polling(open_page, monkeypatch):
    browser = FragmentTimer(monkeypatch)
    at = open_page("app_pages/train.py")
    assert not at.exception
    assert any(b.label == "Launch training" for b in at.button)
    assert browser.polled == []  # no job: nothing reruns on a timer


def test_the_view_polls_while_the_job_runs_and_stops_when_it_ends(monkeypatch, tmp_path):
    import app_pages._train_live as live

    browser = FragmentTimer(monkeypatch)
    view = LiveView(state="running", epochs=2, epoch=0, batch=1, batches=4, run_dir=str(tmp_path))
    registry = type("Registry", (), {"current": FakeJob(view)})()
    monkeypatch.setattr(live, "job_registry", lambda: registry)
    # a finished run links to the Evaluate page, which a lone function has no navigation for
    monkeypatch.setattr(live.st, "page_link", lambda *args, **kwargs: None)
    at = AppTest.from_function(draw_live_view, default_timeout=30)
    at.run()
    assert not at.exception
    assert len(browser.polled) == 1  # the live view, while the job trains
    view.state, view.epoch, view.batch = "finished", 1, 4
    at = browser.tick(at)  # the timer: the view sees the job ended and redraws the page
    assert not at.exception
    assert any("Training finished." in s.value for s in at.success)
    assert browser.polled == []
    at.run()  # a later rerun (a click elsewhere) still asks for none
    assert browser.polled == []
