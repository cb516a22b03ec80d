"""AppTest: runs of two data sets can be told apart and filtered wherever a run is picked (Runs,
Evaluate, Classify), and the chosen run still follows across pages (issue #29, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.state import RUN_KEY
from tests.app.conftest import frame, no_exception

pytestmark = pytest.mark.slow

EVALUATE, CLASSIFY, RUNS = "app_pages/evaluate.py", "app_pages/classify.py", "app_pages/runs.py"


def data_dir(run: Path) -> str:
    return json.loads((run / "config.json").read_text())["data_dir"]


def images_of(run: Path) -> int:
    return sum(len(v) for v in json.loads((run / "splits.json").read_text()).values())


@pytest.fixture
def flowers_run(another_copy, app_dirs) -> Path:
    """A copy of the trained run that says it trained on another folder, ``flowers``, with
    fewer images (its training split halved): a run of a second data set."""
    run = another_copy("flowers")
    folder = app_dirs["data"] / "flowers"
    config = json.loads((run / "config.json").read_text())
    config["data_dir"] = str(folder)
    (run / "config.json").write_text(json.dumps(config))
    splits = json.loads((run / "splits.json").read_text())
    splits["train"] = splits["train"][: len(splits["train"]) // 2]
    (run / "splits.json").write_text(json.dumps(splits))
    sizes = {split: len(rows) for split, rows in splits.items()}  # as a new run records them
    (run / "dataset.json").write_text(json.dumps({"images": sum(sizes.values()), "splits": sizes}))
    return run


def test_runs_table_names_each_runs_data_set_and_filters_by_it(open_page, run_dir, flowers_run):
    colours, flowers = images_of(run_dir), images_of(flowers_run)
    assert colours != flowers
    at = open_page(RUNS)
    no_exception(at)
    table = frame(at, "data set")
    rows = dict(zip(table["run"], zip(table["data set"], table["images"])))
    assert rows == {run_dir.name: ("colours", colours), flowers_run.name: ("flowers", flowers)}

    box = at.selectbox(key="runs_dataset")
    assert box.label == "Data set"
    assert box.options[0].startswith("All data sets")
    assert any(o.startswith(f"flowers · {flowers} images") for o in box.options)
    box.select(data_dir(flowers_run)).run()
    no_exception(at)
    assert list(frame(at, "data set")["run"]) == [flowers_run.name]
    # the run managed below is one of that data set, its folder and size spelled out
    assert at.selectbox(key="runs_manage").value == str(flowers_run)
    detail = " ".join(c.value for c in at.caption)
    assert f"flowers · {flowers} images" in detail and data_dir(flowers_run) in detail


def test_runs_compare_shows_each_runs_data_set(open_page, run_dir, flowers_run):
    at = open_page(RUNS)
    assert set(at.multiselect(key="runs_compare").value) == {run_dir.name, flowers_run.name}
    compared = frame(at, "folder")
    assert dict(zip(compared["run"], compared["data set"])) == {
        run_dir.name: "colours",
        flowers_run.name: "flowers",
    }
    assert any("different data sets" in w.value for w in at.warning)


def test_evaluate_picker_names_data_sets_filters_and_the_choice_follows(
    open_page, run_dir, flowers_run
):
    at = open_page(EVALUATE)
    no_exception(at)
    runs = at.selectbox(key="evaluate_run")
    labels = dict(zip([str(flowers_run), str(run_dir)], runs.options))
    assert f"colours · {images_of(run_dir)} images" in labels[str(run_dir)]
    assert f"flowers · {images_of(flowers_run)} images" in labels[str(flowers_run)]
    assert data_dir(flowers_run) in runs.help  # the chosen run's folder, in full

    at.selectbox(key="evaluate_run_dataset").select(data_dir(run_dir)).run()
    no_exception(at)
    runs = at.selectbox(key="evaluate_run")
    assert len(runs.options) == 1 and runs.value == str(run_dir)
    assert at.session_state[RUN_KEY] == str(run_dir)  # picking the data set picked its run

    at.switch_page(CLASSIFY).run()
    no_exception(at)
    assert at.selectbox(key="classify_run").value == str(run_dir)
    assert at.selectbox(key="classify_run_dataset").options[0].startswith("All data sets")


def test_one_data_set_offers_no_filter(open_page, run_dir):
    at = open_page(RUNS)
    no_exception(at)
    assert not [s for s in at.selectbox if s.key == "runs_dataset"]
    assert list(frame(at, "data set")["data set"]) == ["colours"]
