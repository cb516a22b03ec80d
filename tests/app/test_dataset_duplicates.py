"""The Dataset page's count of problems and of identical files agree with the sections that list
them, and the extra copies can be taken out (and put back) through the Clean journal."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from streamlit.testing.v1 import AppTest

from modelkit.cleaning.journal import JOURNAL_NAME, TRASH_NAME, Journal

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def png(path: Path, color) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), color).save(path)


def split_dataset(root: Path) -> Path:
    """train/ and val/ of cats and dogs, a corrupt file, a copy of a train cat in val (a leak)
    and a second copy of a dog within train."""
    for split, n in (("train", 4), ("val", 2)):
        for i in range(n):
            png(root / split / "cats" / f"cat{i}.png", (200, 10 * i, 0 if split == "train" else 90))
            png(root / split / "dogs" / f"dog{i}.png", (0, 10 * i, 200 if split == "train" else 99))
    (root / "train" / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    cat = (root / "train" / "cats" / "cat1.png").read_bytes()
    (root / "val" / "cats" / "cat1_copy.png").write_bytes(cat)
    dog = (root / "train" / "dogs" / "dog2.png").read_bytes()
    (root / "train" / "dogs" / "dog2_again.png").write_bytes(dog)
    return root


def open_path(at: AppTest, path) -> AppTest:
    at.text_input(key="ds_path_input").set_value(str(path))
    at.button(key="ds_open_path").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table_with(at: AppTest, column: str):
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    return None


def headings(at: AppTest) -> list[str]:
    return [str(m.value) for m in at.markdown if str(m.value).startswith("#####")]


def test_headline_counts_what_each_section_lists(app, tmp_path):
    at = open_path(app, split_dataset(tmp_path / "pets"))
    m = metrics(at)
    problems = table_with(at, "problem")
    dups = table_with(at, "cross_class")
    assert list(problems["file"]) == ["train/cats/broken.jpg"]
    assert int(m["Problems"]) == len(problems) == 1
    assert int(m["Identical files"]) == len(dups) == 2
    assert "##### Problems (1)" in headings(at)
    assert "##### Identical files (2)" in headings(at)
    warning = "\n".join(w.value for w in at.warning)
    assert "1 problem(s) (listed under Problems)" in warning
    assert "1 group(s) of identical files across classes or splits" in warning


def test_a_leak_alone_is_not_called_a_problem_the_problems_section_denies(app, tmp_path):
    root = split_dataset(tmp_path / "pets")
    (root / "train" / "cats" / "broken.jpg").unlink()
    at = open_path(app, root)
    assert metrics(at)["Problems"] == "0"
    assert table_with(at, "problem") is None  # the section says all is well...
    warning = "\n".join(w.value for w in at.warning)
    assert "Problems" not in warning  # ...and so does the headline, pointing at the copies
    assert "identical files across classes or splits (listed under Identical files" in warning


def test_remove_the_extra_copies_through_the_journal_then_undo(app, tmp_path):
    root = split_dataset(tmp_path / "pets")
    at = open_path(app, root)
    button = at.button(key="ds_dup_remove")
    assert button.label == "Remove the extra copies (2 files)"
    button.click().run()
    assert not at.exception
    # train's copies stay; the copy in val and the second dog copy are in the trash
    assert (root / "train" / "cats" / "cat1.png").is_file()
    assert (root / "train" / "dogs" / "dog2.png").is_file()
    assert not (root / "val" / "cats" / "cat1_copy.png").exists()
    assert not (root / "train" / "dogs" / "dog2_again.png").exists()
    assert (root / TRASH_NAME / "val" / "cats" / "cat1_copy.png").is_file()
    assert (root / TRASH_NAME / "train" / "dogs" / "dog2_again.png").is_file()
    # the journal the Clean page reads lists both, undoable there too
    active = Journal(root).active()
    assert sorted(e.src for e in active) == ["train/dogs/dog2_again.png", "val/cats/cat1_copy.png"]
    assert all(e.action == "remove" for e in active)
    # the check ran again on the cleaned folder
    assert metrics(at)["Identical files"] == "0"
    assert "Moved 2 file(s)" in "\n".join(s.value for s in at.success)

    at.button(key="ds_dup_undo").click().run()
    assert not at.exception
    assert (root / "val" / "cats" / "cat1_copy.png").is_file()
    assert (root / "train" / "dogs" / "dog2_again.png").is_file()
    assert Journal(root).active() == []
    assert metrics(at)["Identical files"] == "2"
    assert (root / JOURNAL_NAME).is_file()  # the story stays written


def test_copies_with_different_labels_are_offered_apart(app, tmp_path):
    root = tmp_path / "pets"
    for i in range(4):
        png(root / "cats" / f"cat{i}.png", (200, 10 * i, 0))
        png(root / "dogs" / f"dog{i}.png", (0, 10 * i, 200))
    (root / "dogs" / "which.png").write_bytes((root / "cats" / "cat0.png").read_bytes())
    at = open_path(app, root)
    assert not [b for b in at.button if b.key == "ds_dup_remove"]  # no label is guessed
    conflicts = at.button(key="ds_dup_remove_conflicts")
    assert conflicts.label == "Remove all 2 files with conflicting labels"
    conflicts.click().run()
    assert not at.exception
    assert not (root / "cats" / "cat0.png").exists() and not (root / "dogs" / "which.png").exists()
    assert len(Journal(root).active()) == 2
