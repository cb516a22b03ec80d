"""The sidebar names the long step a job is in as the live view does ("Computing features for
the head (pass 2 of 3) 40/120"), not "decoding images" for every preparation step (#29)."""

from __future__ import annotations

import time

from helpers import FakeJob
from streamlit.testing.v1 import AppTest

from modelkit.jobs import LiveView


def draw_sidebar() -> None:
    from studio.sidebar import render_sidebar

    render_sidebar()


def test_the_sidebar_names_the_step_under_way(monkeypatch):
    import studio.sidebar as sidebar

    view = LiveView(
        state="running", epochs=7, epoch=1, batch=22, batches=22, started=time.time() - 60,
        step="Computing features for the head (pass 2 of 3)", step_done=40, step_total=120,
    )  # fmt: skip
    job = FakeJob(view)
    registry = type("Registry", (), {"current": job, "active": lambda self: job})()
    monkeypatch.setattr(sidebar, "job_registry", lambda: registry)
    at = AppTest.from_function(draw_sidebar, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    texts = [p.proto.text for p in at.sidebar.get("progress")]
    assert texts == ["Computing features for the head (pass 2 of 3) 40/120"]
