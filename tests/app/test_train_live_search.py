"""The Train page's live view shows what ``auto`` measured before choosing (the candidates, their
held-out accuracy and seconds, and why the winner won) as a small table under the plan line, and,
once a budgeted run has ended well before its budget, why in one sentence. A fake job's snapshot
and run folder feed it: nothing trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelkit.jobs import LiveView

SEARCH = {
    "candidates": [
        {"arch": "efficientnet_lite0", "image_size": 224, "heldout_accuracy": 0.812,
         "seconds": 4.21, "skipped": ""},
        {"arch": "efficientnet_lite1", "image_size": 240, "heldout_accuracy": 0.845,
         "seconds": 6.0, "skipped": ""},
        {"arch": "efficientnet_lite2", "image_size": 260, "heldout_accuracy": None,
         "seconds": 0.0, "skipped": "would not fit the budget"},
    ],
    "images": 300, "folds": 4, "winner": "efficientnet_lite1",
    "why": "best held-out accuracy of its frozen features (0.845, +0.033 over the next)",
    "seconds": 10.2, "notes": [],
}  # fmt: skip
NOTE = "ended at 120 s of 300 s: the 7 epochs asked were done"


@pytest.fixture
def show(show_live_view):
    return show_live_view


def _run_folder(tmp_path: Path, search: dict | None = None, note: str = "") -> str:
    run = tmp_path / "run"
    run.mkdir(parents=True)
    if search is not None:
        (run / "auto_search.json").write_text(json.dumps(search), encoding="utf-8")
    status = {"state": "finished", "reason": "completed", **({"budget_note": note} if note else {})}
    (run / "status.json").write_text(json.dumps(status), encoding="utf-8")
    return str(run)


def test_autos_candidates_are_a_table_under_the_plan_line(show, tmp_path):
    view = LiveView(
        state="running", epochs=19, epoch=2, batch=3, batches=10,
        run_dir=_run_folder(tmp_path, SEARCH),
        plan="planned 19 of the 60 epochs asked: 5m00s time budget",
    )  # fmt: skip
    at = show(view)
    (table,) = [d.value for d in at.dataframe]
    assert list(table["backbone"]) == [c["arch"] for c in SEARCH["candidates"]]
    assert list(table["held-out accuracy"])[:2] == [0.812, 0.845]
    assert list(table["seconds"])[:2] == [4.2, 6.0]
    assert list(table["chosen"]) == [False, True, False]
    assert table["note"].iloc[2] == "would not fit the budget"
    captions = [c.value for c in at.caption]
    plan = captions.index("Planned 19 of the 60 epochs asked: 5m00s time budget")
    title = captions.index("Backbones measured on held-out training images")
    assert plan < title  # under the plan line
    assert captions[title + 1] == f"Chosen: efficientnet_lite1: {SEARCH['why']}"
    assert not at.info  # running: no note on how it ended
    # a run auto did not choose by measuring has no table
    other = LiveView(state="running", epochs=3, batches=4, run_dir=_run_folder(tmp_path / "b"))
    assert not show(other).dataframe


def test_a_run_that_ended_early_says_why(show, tmp_path):
    view = LiveView(
        state="finished", epochs=7, epoch=6, batch=4, batches=4,
        run_dir=_run_folder(tmp_path, note=NOTE), best={"epoch": 7}, last={"epoch": 7},
    )  # fmt: skip
    at = show(view)
    assert [i.value for i in at.info] == ["Ended at 120 s of 300 s: the 7 epochs asked were done"]
    assert any("Training finished." in s.value for s in at.success)
    # a run that used its budget has nothing to explain
    used = LiveView(
        state="finished", epochs=7, epoch=6, batch=4, batches=4,
        run_dir=_run_folder(tmp_path / "b"), best={"epoch": 7}, last={"epoch": 7},
    )  # fmt: skip
    assert not show(used).info
