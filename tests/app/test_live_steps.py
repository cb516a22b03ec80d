"""The Train page's live view names the long step a run is in (validating, caching features),
with its bar and time left, and the whole run's time left: not the epoch's last batch standing
still while minutes go by."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from modelkit.jobs import LiveView


@pytest.fixture
def show(show_live_view):
    return show_live_view


def progress_texts(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def test_a_validation_after_the_last_batch_is_named_with_its_eta(show):
    now = time.time()
    view = LiveView(
        state="running", epochs=7, epoch=1, batch=22, batches=22, started=now - 100,
        step="Validating epoch 2", step_done=30, step_total=120, step_elapsed=10.0,
        step_heard=now,
    )  # fmt: skip
    at = show(view)
    (text,) = progress_texts(at)
    assert text.startswith("Validating epoch 2 · 30/120 images · ETA ")
    assert "estimating" not in text and "batch 22/22" not in text
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Whole run: epoch 2/7, about ") for c in captions), captions


def test_a_features_pass_says_which_pass_it_is(show):
    view = LiveView(
        state="decoding", epochs=3, step="Computing features for the head (pass 1 of 2)",
        step_done=0, step_total=500, step_heard=time.time(),
    )  # fmt: skip
    (text,) = progress_texts(show(view))
    assert text == "Computing features for the head (pass 1 of 2) · 0/500 images · ETA estimating…"
