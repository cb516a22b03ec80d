"""The Clean page: score a folder, fix what it finds through the journal, undo, compare runs."""

from __future__ import annotations

import json
import os

from modelkit.cleaning.journal import JOURNAL_NAME, TRASH_NAME
from studio.state import DATASET_KEY
from tests.app.conftest import APP, make_colour_dataset

PAGE = "app_pages/clean.py"


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def _score(at, folder):
    at.text_input(key="clean_path").set_value(str(folder)).run()
    next(s for s in at.selectbox if s.label == "Features from").set_value("pixels").run()
    _button(at, "Find label issues").click().run()
    assert not at.exception, at.exception
    return at


def test_nothing_to_score_without_a_folder(open_page):
    at = open_page(PAGE)
    assert not at.exception
    assert _button(at, "Find label issues").disabled


def test_the_folder_chosen_on_the_dataset_page_is_filled_in(app_dirs):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state[DATASET_KEY] = str(app_dirs["data"])
    at.run()
    at.switch_page(PAGE).run()
    assert at.text_input(key="clean_path").value == str(app_dirs["data"])


def test_a_folder_outside_the_allowed_roots_is_refused(open_page, tmp_path):
    at = open_page(PAGE)
    at.text_input(key="clean_path").set_value(str(tmp_path)).run()
    assert any("outside the folders" in e.value for e in at.error)
    assert _button(at, "Find label issues").disabled


def test_score_relabel_remove_and_undo(open_page, app_dirs):
    data = make_colour_dataset(app_dirs["data"] / "colours")
    os.replace(data / "red" / "red_03.png", data / "blue" / "red_03.png")  # a wrong label
    at = _score(open_page(PAGE), data)
    text = " ".join(m.value for m in at.markdown)
    assert "**#1** blue/red_03.png" in text and "suggested **red**" in text

    assert at.selectbox(key="clean_to_1").value == "red"
    at.button(key="clean_relabel_1").click().run()
    assert (data / "red" / "red_03.png").is_file() and not (data / "blue" / "red_03.png").exists()

    at.button(key="clean_remove_2").click().run()
    trashed = list((data / TRASH_NAME).rglob("*.png"))
    assert len(trashed) == 1
    entries = [json.loads(x) for x in (data / JOURNAL_NAME).read_text().splitlines()]
    assert [e["action"] for e in entries] == ["relabel", "remove"]

    at.button(key=f"clean_undo_{entries[1]['id']}").click().run()
    assert not at.exception
    assert (data / entries[1]["src"]).is_file() and not trashed[0].exists()
    assert (data / "red" / "red_03.png").is_file()
    at.button(key="clean_undo_all").click().run()
    assert (data / "blue" / "red_03.png").is_file()


def test_compare_two_runs(open_page, run_dir, another_copy):
    other = another_copy("after")
    at = open_page(PAGE)
    boxes = {s.label: s for s in at.selectbox}
    boxes["Run before cleaning"].set_value(str(run_dir))
    boxes["Run after cleaning"].set_value(str(other))
    at.run()
    _button(at, "Compare").click().run()
    assert not at.exception, at.exception
    assert len(at.metric) == 2
    assert any("bootstrap interval" in c.value for c in at.caption)
    rows = at.dataframe[0].value
    assert list(rows["delta"]) == [0.0] * len(rows)


def test_each_change_says_which_file_went_where_with_an_undo(open_page, app_dirs):
    data = make_colour_dataset(app_dirs["data"] / "colours")
    os.replace(data / "red" / "red_03.png", data / "blue" / "red_03.png")  # a wrong label
    at = _score(open_page(PAGE), data)

    at.button(key="clean_relabel_1").click().run()
    said = "Moved blue/red_03.png to red"
    assert any(said in t.value for t in at.toast), [t.value for t in at.toast]
    assert any(said in s.value and "red/red_03.png" in s.value for s in at.success)

    at.button(key="clean_feedback_undo").click().run()  # the Undo next to the line
    assert not at.exception
    assert (data / "blue" / "red_03.png").is_file() and not (data / "red" / "red_03.png").exists()
    assert any("Undid #1" in s.value and "blue/red_03.png is back" in s.value for s in at.success)
    assert not [b for b in at.button if b.key == "clean_feedback_undo"]  # nothing left to undo

    kept = at.button(key="clean_keep_1")
    kept.click().run()
    assert any(s.value.startswith("Kept blue/red_03.png in blue") for s in at.success)
    at.button(key="clean_remove_2").click().run()
    removed = json.loads((data / JOURNAL_NAME).read_text().splitlines()[-1])
    assert any(
        f"to the trash ({TRASH_NAME}/" in s.value and "nothing is deleted" in s.value
        for s in at.success
    )
    assert (data / removed["dst"]).is_file()


def test_a_change_that_fails_says_why(open_page, app_dirs):
    data = make_colour_dataset(app_dirs["data"] / "colours")
    at = _score(open_page(PAGE), data)
    first = next(m.value for m in at.markdown if m.value.startswith("**#1**"))
    name = first.split("** ", 1)[1].split("  \n")[0]
    (data / name).unlink()  # gone behind the page's back
    at.button(key="clean_remove_1").click().run()
    assert not at.exception
    assert any("no such file" in e.value for e in at.error), [e.value for e in at.error]
    assert any("no such file" in t.value for t in at.toast)


def test_run_pickers_name_the_data_set(open_page, run_dir):
    at = open_page(PAGE)
    shown = f"{run_dir.name} · colours · 40 images"
    sources = next(s for s in at.selectbox if s.label == "Features from")
    assert f"Run {shown}" in sources.options
    before = next(s for s in at.selectbox if s.label == "Run before cleaning")
    assert shown in before.options


def test_changes_made_elsewhere_are_listed_with_their_undo_before_any_scoring(open_page, app_dirs):
    """The Dataset page removes identical copies through the same journal: the Clean page lists
    them, with an undo, without having to score the folder first."""
    from modelkit.cleaning.journal import Journal

    folder = make_colour_dataset(app_dirs["data"] / "copies", per_class=3)
    victim = sorted((folder / "red").iterdir())[0]
    Journal(folder).remove(victim)
    assert not victim.exists()
    at = open_page(PAGE)
    at.text_input(key="clean_path").set_value(str(folder)).run()
    assert not at.exception, at.exception
    assert any(f"red/{victim.name}" in m.value for m in at.markdown)
    next(b for b in at.button if b.label == "Undo").click().run()
    assert not at.exception, at.exception
    assert victim.is_file()


def test_retrain_takes_the_person_to_the_train_page(open_page, run_dir):
    from studio.state import job_registry

    at = open_page(PAGE)
    next(s for s in at.selectbox if s.label == "Run before cleaning").set_value(str(run_dir))
    at.run()
    _button(at, "Retrain with the same settings and seed").click().run()
    assert not at.exception, at.exception
    job = job_registry().current
    assert job is not None
    assert at.header[0].value == "Train"  # where the run shows live
    assert any(h.value.startswith("Run ") for h in at.subheader)
    job.join(120)
