"""The Dataset page's folder browser tells a folder of data sets from a data set, and the chosen
data set lives in the address (``?dataset=``), so a reload finds it again."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from studio.state import DATASET_KEY

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def png(path: Path, color) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), color).save(path)


def classes(root: Path, names: str) -> Path:
    for k, name in enumerate(names.split()):
        for i in range(3):
            png(root / name / f"{i}.png", (40 * k, 30 * i, 90))
    return root


@pytest.fixture
def env(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MODELKIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODELKIT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MODELKIT_ALLOWED_ROOTS", str(tmp_path))
    return tmp_path


def start(query: dict | None = None) -> AppTest:
    """A fresh browser tab on the app (a reload is one too), at an address with ``query``."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query or {})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_a_folder_of_data_sets_offers_each_one_not_itself(env):
    bench = env / "bench"
    classes(bench / "flowers", "daisy rose tulip")
    classes(bench / "pets", "cats dogs")
    for split in ("train", "val"):
        classes(bench / "scenes" / split, "sea street")
    at = start()
    next(b for b in at.button if b.label == ":material/folder: bench").click().run()
    assert "a folder of **3 datasets**" in texts(at.markdown)
    assert "class folders" not in texts(at.markdown)  # not called a data set of 3 classes
    assert at.button(key="ds_browse_use").proto.type != "primary"
    offered = [b for b in at.button if (b.key or "").startswith("ds_inner_")]
    assert [b.label.split(" Open ", 1)[1] for b in offered] == [
        "flowers · 3 class folders",
        "pets · 2 class folders",
        "scenes · train/val splits",
    ]
    assert all(b.proto.type == "primary" for b in offered)
    offered[1].click().run()
    assert not at.exception
    assert at.session_state[DATASET_KEY] == str(bench / "pets")
    assert metrics(at)["Classes"] == "2"
    # inside, the browser shows a data set as one, with "Use this folder" first
    assert "looks like a dataset: *2 class folders*" in texts(at.markdown)
    assert at.button(key="ds_browse_use").proto.type == "primary"
    assert not [b for b in at.button if (b.key or "").startswith("ds_inner_")]


def test_the_chosen_data_set_is_in_the_address_and_a_reload_opens_it(env):
    root = classes(env / "pets", "cats dogs")
    at = start()
    at.text_input(key="ds_path_input").set_value(str(root))
    at.button(key="ds_open_path").click().run()
    assert at.query_params["dataset"] == str(root)

    again = start({"dataset": at.query_params["dataset"]})  # the reload: a fresh tab
    assert again.session_state[DATASET_KEY] == str(root)
    assert metrics(again)["Classes"] == "2"
    assert again.query_params["dataset"] == str(root)


def test_an_address_outside_the_allowed_folders_is_refused(env):
    at = start({"dataset": "/etc"})
    assert DATASET_KEY not in at.session_state
    assert "cannot be opened" in texts(at.warning)
    assert "outside the folders" in texts(at.warning)
    assert "dataset" not in at.query_params
    assert "No dataset chosen yet" in texts(at.info)
