"""The Label page on a tiny folder of unlabelled colour images (colour-thumbnail features, no
model): type classes, label with the number keys, a map selection and a thumbnail click, take
the near-duplicate offer, accept the model's suggestions, undo, and train; the files end where
the journal says. Also: bad files listed with the reason, names shown as text, a folder outside
the allowed roots refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import write_dataset
from streamlit.testing.v1 import AppTest

from app_pages._label_grid import tile_key
from modelkit.cleaning.journal import Journal
from studio.label_state import SOURCE_SAVED
from studio.state import DATASET_KEY
from tests.app.conftest import APP

PAGE = "app_pages/label.py"
KEYS = {"red": "1", "green": "2", "blue": "3"}


def _folder(root: Path, per_class: int = 6) -> Path:
    """root/photos/unlabelled/ with ``per_class`` images of red, green and blue."""
    src = write_dataset(root / "src", num_classes=3, per_class=per_class)
    data = root / "photos"
    (data / "unlabelled").mkdir(parents=True)
    for p in sorted(src.rglob("*.png")):
        shutil.copy2(p, data / "unlabelled" / p.name)
    shutil.rmtree(src)
    return data


def _open(data: Path, classes: str = "red, green, blue") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state[DATASET_KEY] = str(data)
    at.session_state[SOURCE_SAVED] = "pixels"  # colour thumbnails: no model to load
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    if classes:
        at.text_input(key="label_classes_input").set_value(classes).run()
    return at


def _captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def _current(at: AppTest) -> str:
    """The name of the image the one-at-a-time view shows."""
    return next(c for c in _captions(at) if c.endswith(" to label") and " · " in c)


def _button(at: AppTest, start: str):
    found = [b for b in at.button if b.label.startswith(start)]
    assert found, (start, [b.label for b in at.button], [e.value for e in at.error])
    return found[0]


def _on_disk(data: Path) -> list[str]:
    return sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))


def _journal_agrees(data: Path) -> None:
    """Every change still in effect: its file is at dst and gone from src."""
    for e in Journal(data).active():
        assert (data / e.dst).is_file(), e
        assert e.action == "copy" or not (data / e.src).exists(), e


def _map_points(at: AppTest) -> dict[str, int]:
    """File name shown on the map -> the dot's row (what a selection hands back)."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {name: row for t in spec["data"] for row, name in zip(t["customdata"], t["text"])}


def _select(at: AppTest, rows: list[int]) -> None:
    """What a box drawn around ``rows`` on the map hands the page."""
    points = [{"customdata": r} for r in rows]
    selection = {"points": points, "point_indices": rows, "box": [], "lasso": []}
    at.session_state["label_map"] = {"selection": selection}
    at.run()


def test_type_classes_label_with_keys_map_and_clicks_accept_undo_and_train(app_dirs):
    data = _folder(app_dirs["root"], per_class=10)
    at = _open(data)
    assert "30 to label · 0 not sure · no classes yet" in _captions(at)
    assert any(
        "**1** red · **2** green · **3** blue · **0** not sure" in m.value for m in at.markdown
    )

    for _ in range(4):  # number keys, one image at a time, each given its true class
        name = _current(at).split(" ·")[0]
        at.text_input(key="label_key").input(KEYS[Path(name).name.split("_")[0]]).run()
        assert not at.exception, at.exception
        assert (data / Path(name).name.split("_")[0] / Path(name).name).is_file()
    assert at.text_input(key="label_key").value == ""  # emptied for the next image

    at.radio[0].set_value("blue").run()  # the class a map selection gives
    blues = [r for n, r in _map_points(at).items() if n.startswith("unlabelled/blue")][:2]
    _select(at, blues)
    _button(at, "Label the 2 selected as blue").click().run()
    assert not at.exception, at.exception

    at.radio[0].set_value("red").run()
    red = next(p for p in sorted((data / "unlabelled").glob("red_*.png")))
    at.button(key=tile_key("label_grid_give", str(red))).click().run()  # its thumbnail's button
    assert any("Moved 1 into red" in s.value for s in at.success)
    assert (data / "red" / red.name).is_file()
    offer = [b for b in at.button if b.label.startswith("Label them")]
    if offer:  # near-duplicates of what was just labelled, offered the same class
        assert offer[0].label == "Label them red too"
        offer[0].click().run()

    for cls in KEYS:  # a cluster a class on the map: all but two of its images
        at.radio[0].set_value(cls).run()
        rows = [r for n, r in _map_points(at).items() if n.startswith(f"unlabelled/{cls}")]
        if len(rows) <= 2:  # near-duplicate offers took the rest
            continue
        _select(at, rows[:-2])
        _button(at, f"Label the {len(rows) - 2} selected as {cls}").click().run()
    _select(at, [])
    assert any(m.label == "Estimated accuracy" for m in at.metric)
    accept = _button(at, "Accept all ")
    count = int(accept.label.split()[2])
    assert count > 0
    left = len(list((data / "unlabelled").glob("*.png")))
    accept.click().run()
    assert not at.exception, at.exception
    assert len(list((data / "unlabelled").glob("*.png"))) == left - count
    for cls in KEYS:  # colour classes: the model's labels are right
        assert all(p.name.startswith(cls) for p in (data / cls).glob("*.png")), cls
    _journal_agrees(data)

    last = Journal(data).active()[-1]
    _button(at, "Undo the last change").click().run()
    assert (data / last.src).is_file() and not (data / last.dst).exists()
    _journal_agrees(data)

    for _ in sorted((data / "unlabelled").glob("*.png")):  # the rest: not sure (key 0)
        at.text_input(key="label_key").input("0").run()
    assert not list((data / "unlabelled").glob("*.png"))
    assert _button(at, "Train on these labels").disabled is False
    _button(at, "Train on these labels").click().run()
    assert not at.exception, at.exception
    assert not (data / "unlabelled").exists()  # empty: removed, so training sees 3 classes
    assert at.session_state[DATASET_KEY] == str(data)
    assert at.text_input[0].label == "Dataset folder" and at.text_input[0].value == str(data)
    recipe = next(s for s in at.selectbox if s.label == "Recipe")
    assert recipe.value == "auto"
    _journal_agrees(data)


def test_copy_keeps_the_original_and_its_undo_moves_the_copy_to_the_trash(app_dirs):
    data = _folder(app_dirs["root"], per_class=2)
    at = _open(data)
    at.toggle(key="label_mode").set_value(True).run()
    name = _current(at).split(" ·")[0]
    cls = Path(name).name.split("_")[0]
    at.text_input(key="label_key").input(KEYS[cls]).run()
    assert (data / name).is_file() and (data / cls / Path(name).name).is_file()
    assert "5 to label" in " ".join(_captions(at))
    _button(at, "Undo the last change").click().run()
    assert (data / name).is_file() and not (data / cls / Path(name).name).exists()
    assert list((data / ".modelkit-trash").rglob("*.png"))


def test_bad_files_are_listed_with_the_reason_and_names_stay_text(app_dirs):
    data = _folder(app_dirs["root"], per_class=2)
    (data / "unlabelled" / "broken.jpg").write_bytes(b"not a jpeg")
    shutil.copy2(data / "unlabelled" / "red_00.png", data / "unlabelled" / "**bold** [x](y).png")
    at = _open(data, classes="red, ../up, .hidden")
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "../up" in warnings and ".hidden" in warnings  # refused as class names, with why
    expander = next(e for e in at.expander if "left out" in e.label)
    text = " ".join(m.value for m in expander.markdown)
    assert "broken.jpg" in text
    shown = " ".join(_captions(at))
    assert r"\*\*bold\*\* \[x\](y).png" in shown  # escaped: never bold, never a link
    assert _button(at, "Train on these labels").disabled


def test_a_folder_outside_the_allowed_roots_is_refused(app_dirs, tmp_path):
    outside = _folder(tmp_path, per_class=1)
    at = _open(outside, classes="")
    assert not at.exception
    assert any("outside" in e.value for e in at.error)
    assert not (outside / ".modelkit-labelling").exists()


@pytest.mark.parametrize("layout", ["flat"])
def test_a_flat_folder_labels_loose_photos_into_class_folders(app_dirs, layout):
    data = _folder(app_dirs["root"], per_class=1)
    for p in (data / "unlabelled").iterdir():
        p.rename(data / p.name)
    (data / "unlabelled").rmdir()
    at = _open(data)
    name = _current(at).split(" ·")[0]
    at.text_input(key="label_key").input(KEYS[name.split("_")[0]]).run()
    assert name in " ".join(_on_disk(data))
    assert (data / name.split("_")[0] / name).is_file() and not (data / name).exists()
