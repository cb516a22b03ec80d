"""An ensemble run on the pages a person meets it: the Runs page says what it averages, the
Evaluate page names its runs where curves would be, and the Clean page says why it cannot be
retrained. And a data set given as a list of files stays chosen when the browser reloads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from modelkit.runs.store import load_run
from studio.state import DATASET_KEY
from tests.app.conftest import APP, copy_run, frame, make_colour_dataset, no_exception

RUNS, EVALUATE, CLEAN = "app_pages/runs.py", "app_pages/evaluate.py", "app_pages/clean.py"
TRAIN = "app_pages/train.py"


@pytest.fixture(scope="module")
def built(app_run, tmp_path_factory) -> list[Path]:
    """Two copies of the session's run and their ensemble, made once: [a, b, ensemble]."""
    from modelkit.runs.ensemble import build_ensemble_run

    runs = tmp_path_factory.mktemp("ensemble_pages") / "runs"
    runs.mkdir()
    a = copy_run(app_run, runs, f"{app_run.name}-a")
    b = copy_run(app_run, runs, f"{app_run.name}-b")
    return [a, b, build_ensemble_run([a, b], runs, "pair", device="cpu")]


@pytest.fixture
def ensemble(built, app_dirs) -> list[Path]:
    """This test's copies of the two runs and their ensemble, in its runs folder."""
    return [copy_run(run, app_dirs["runs"]) for run in built]


def test_the_runs_page_says_what_the_ensemble_averages(open_page, ensemble):
    a, b, ens = ensemble
    at = open_page(RUNS)
    no_exception(at)
    table = frame(at, "summary").set_index("run")
    said = f"ensemble of {a.name} + {b.name} (32 px)"
    assert table.loc[ens.name, "summary"] == said
    assert table.loc[ens.name, "epochs"] == "-"  # it trained none
    assert table.loc[a.name, "summary"].startswith("resnet18 32px")
    assert at.selectbox(key="runs_manage").value == str(ens)  # the newest
    assert any(c.value.startswith(said) for c in at.caption)


def test_evaluate_names_the_runs_where_the_curves_would_be(open_page, ensemble):
    a, b, ens = ensemble
    at = open_page(EVALUATE)
    no_exception(at)
    assert at.selectbox(key="evaluate_run").value == str(ens)
    said = "\n".join(i.value for i in at.info)
    assert "no epochs of its own" in said
    for run in (a, b):
        assert f"{run.name} (best val accuracy {load_run(run).best_val_acc:.1%})" in said
    assert not any("no per-epoch metrics" in c.value for c in at.caption)


def test_clean_says_an_ensemble_cannot_be_retrained_and_names_its_runs(open_page, ensemble):
    from studio.state import job_registry

    a, b, ens = ensemble
    at = open_page(CLEAN)
    before = next(s for s in at.selectbox if s.label == "Run before cleaning")
    assert before.value == str(ens)
    no_exception(at)
    plain = f"has no training settings of its own: it averages runs {a.name} and {b.name}"
    assert any(plain in c.value for c in at.caption), [c.value for c in at.caption]
    retrain = next(b for b in at.button if b.label == "Retrain with the same settings and seed")
    assert retrain.disabled
    assert not at.error
    before.set_value(str(a)).run()  # a trained run can be retrained as before
    no_exception(at)
    assert not next(b for b in at.button if b.label.startswith("Retrain")).disabled
    assert job_registry().current is None


def _file_list(folder: Path, where: Path) -> Path:
    """A list of files (the Label page's pseudo-label hand-off writes one) of ``folder``'s
    images: three of each class to train on, the rest to validate."""
    classes = sorted(p.name for p in folder.iterdir())
    splits: dict[str, list] = {"train": [], "val": []}
    for k, name in enumerate(classes):
        for n, image in enumerate(sorted((folder / name).iterdir())):
            splits["train" if n < 3 else "val"].append([str(image), k])
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(json.dumps({"classes": classes, "splits": splits}))
    return where


def _reload(dataset: str, page: str | None = None) -> AppTest:
    """A fresh browser tab (a reload is one) at an address naming ``dataset``, then ``page``."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["dataset"] = dataset
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    return at


def test_a_listed_data_set_survives_a_reload_of_the_train_page(app_dirs):
    folder = make_colour_dataset(app_dirs["data"] / "colours", per_class=4)
    listed = _file_list(folder, app_dirs["data"] / ".modelkit-labelling" / "train-files.json")
    at = _reload(str(listed), TRAIN)
    no_exception(at)
    assert not any("cannot be opened" in w.value for w in at.warning)
    assert at.session_state[DATASET_KEY] == str(listed)
    assert at.query_params["dataset"] == str(listed)
    box = next(t for t in at.text_input if t.label == "Dataset folder")
    assert box.value == str(listed)
    assert not next(b for b in at.button if b.label == "Launch training").disabled


def test_a_listed_data_set_outside_the_allowed_folders_is_refused_on_reload(app_dirs, tmp_path):
    folder = make_colour_dataset(app_dirs["data"] / "colours", per_class=4)
    outside = _file_list(folder, tmp_path / "outside" / "list.json")  # not an allowed root
    linked = app_dirs["data"] / "link.json"
    os.symlink(outside, linked)  # a link inside pointing out: refused as a folder's would be
    for asked in (outside, linked):
        at = _reload(str(asked))
        no_exception(at)
        assert any("cannot be opened" in w.value for w in at.warning), asked
        assert DATASET_KEY not in at.session_state and "dataset" not in at.query_params
