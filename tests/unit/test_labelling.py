"""The labelling library on tiny images made here: which images are still to label, the feature
store, journalled moves with undo, and hostile folders (colour-thumbnail features, no model,
except where the bundled backbone itself is the point)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_dataset

from modelkit.cleaning.journal import JOURNAL_NAME, TRASH_NAME, Journal, JournalError
from modelkit.data.layouts import DatasetError
from modelkit.labelling import assign
from modelkit.labelling.embed import embed_folder_images
from modelkit.labelling.folder import CACHE_NAME, SKIP_NAME, open_folder
from modelkit.labelling.session import Labeller


def unlabelled_folder(tmp_path: Path, per_class: int = 6, inbox: str = "unlabelled") -> Path:
    """DATA/<inbox>/ with ``per_class`` images of each of 3 colour classes, no class folders
    (``inbox=""``: the images lie loose in DATA/)."""
    src = write_dataset(tmp_path / "src", num_classes=3, per_class=per_class)
    data = tmp_path / "data"
    target = data / inbox if inbox else data
    target.mkdir(parents=True)
    for p in sorted(src.rglob("*.png")):
        shutil.copy2(p, target / p.name)
    return data


def files(root: Path) -> list[str]:
    """Every file under root except modelkit's own bookkeeping, relative."""
    skip = (CACHE_NAME, JOURNAL_NAME)
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not any(s in p.parts for s in skip)
    )


@pytest.mark.parametrize("inbox", ["unlabelled", ""])
def test_both_layouts_find_the_images_to_label_and_the_classes(tmp_path, inbox):
    data = unlabelled_folder(tmp_path, 2, inbox)
    (data / "red").mkdir()
    shutil.move(str(data / (inbox or ".") / "red_00.png"), data / "red" / "red_00.png")
    folder = open_folder(data)
    assert folder.classes == ["red"]
    assert folder.counts() == {"red": 1}
    assert len(folder.unlabelled) == 5
    assert all(Path(p).name != "red_00.png" for p in folder.unlabelled)


def test_a_split_layout_is_refused_with_the_reason(tmp_path):
    write_dataset(tmp_path / "d" / "train", 2, 2)
    write_dataset(tmp_path / "d" / "val", 2, 2)
    with pytest.raises(DatasetError, match="train/val"):
        open_folder(tmp_path / "d")


def test_unreadable_files_are_listed_with_the_reason_and_the_rest_embedded(tmp_path):
    data = unlabelled_folder(tmp_path, 2)
    (data / "unlabelled" / "broken.jpg").write_bytes(b"this is not a jpeg")
    (data / "unlabelled" / "empty.png").write_bytes(b"")
    lab = Labeller(data, "pixels")
    table = lab.table()
    assert len(table.paths) == 6
    reasons = {Path(p).name: why for p, why in table.errors}
    assert set(reasons) == {"broken.jpg", "empty.png"}
    assert "0 bytes" in reasons["empty.png"]
    again = Labeller(data, "pixels").table()  # the store remembers the bad files too
    assert again.embedded == 0 and len(again.errors) == 2


def test_links_leaving_the_folder_are_refused_and_names_stay_text(tmp_path):
    data = unlabelled_folder(tmp_path, 1)
    outside = tmp_path / "outside.png"
    shutil.copy(data / "unlabelled" / "red_00.png", outside)
    (data / "unlabelled" / "link.png").symlink_to(outside)
    (data / "unlabelled" / "dirlink").symlink_to(tmp_path / "src", target_is_directory=True)
    odd = os.fsdecode(b"caf\xe9.png")  # not UTF-8: a surrogate in the str
    shutil.copy(data / "unlabelled" / "green_00.png", os.path.join(data / "unlabelled", odd))
    folder = open_folder(data)
    names = {Path(p).name for p in folder.unlabelled}
    assert names == {"red_00.png", "green_00.png", "blue_00.png", odd}
    refused = {Path(p).name: why for p, why in folder.refused}
    assert "symlink" in refused["link.png"] and "folder" in refused["dirlink"]
    out = Labeller(data, "pixels").assign([os.path.join(data / "unlabelled", odd)], "green")
    assert not out.failed and (data / "green").joinpath(odd).exists()


def test_label_moves_through_the_journal_and_undo_restores_the_exact_files(tmp_path):
    data = unlabelled_folder(tmp_path, 3)
    before = files(data)
    lab = Labeller(data, "pixels")
    lab.table()
    out = lab.assign(
        [data / "unlabelled" / "red_00.png", data / "unlabelled" / "red_01.png"], "red"
    )
    assert [e.action for e in out.done] == ["label", "label"]
    assert (data / "red" / "red_00.png").exists() and not (
        data / "unlabelled" / "red_00.png"
    ).exists()
    assert lab.folder.counts() == {"red": 2}
    assert [e.dst for e in Journal(data).active()] == ["red/red_00.png", "red/red_01.png"]
    lab.undo()
    lab.undo()
    assert files(data) == before
    assert lab.undo() is None  # nothing left to undo


def test_copy_keeps_the_original_counts_it_labelled_and_its_undo_moves_the_copy_to_trash(tmp_path):
    data = unlabelled_folder(tmp_path, 2)
    lab = Labeller(data, "pixels")
    original = data / "unlabelled" / "blue_00.png"
    out = lab.assign([original], "blue", copy=True)
    assert out.done[0].action == "copy"
    assert original.read_bytes() == (data / "blue" / "blue_00.png").read_bytes()
    assert str(original) not in lab.folder.unlabelled  # labelled by its copy
    assert lab.table().embedded == 0  # the copy is the same file: found in the store
    lab.undo()
    assert original.exists() and not (data / "blue" / "blue_00.png").exists()
    assert (data / TRASH_NAME / "blue" / "blue_00.png").exists()  # never deleted
    assert str(original) in lab.refresh().unlabelled


def test_skip_bin_and_bad_class_names(tmp_path):
    data = unlabelled_folder(tmp_path, 1)
    lab = Labeller(data, "pixels")
    out = lab.skip([data / "unlabelled" / "red_00.png"])
    assert out.done[0].action == "skip"
    assert (data / SKIP_NAME / "red_00.png").exists()
    assert len(lab.folder.skipped) == 1 and len(lab.folder.unlabelled) == 2
    for bad in ("../up", ".hidden", "unlabelled", "a/b", ""):
        with pytest.raises(JournalError):
            lab.assign([data / "unlabelled" / "green_00.png"], bad)
    out = lab.assign([tmp_path / "src" / "red" / "red_00.png"], "red")  # not in the folder
    assert out.failed and "not an image of this labelling folder" in out.failed[0][1]
    assert not (tmp_path / "red").exists()


def test_moves_keep_the_features_so_nothing_is_embedded_again(tmp_path):
    data = unlabelled_folder(tmp_path, 2)
    lab = Labeller(data, "pixels")
    first = lab.table()
    assert first.embedded == 6
    row = first.features[first.row(str(data / "unlabelled" / "red_00.png"))].copy()
    lab.assign([data / "unlabelled" / "red_00.png"], "red")
    after = lab.table()
    assert after.embedded == 0
    assert np.array_equal(after.features[after.row(str(data / "red" / "red_00.png"))], row)
    shutil.copy2(data / "unlabelled" / "green_00.png", data / "unlabelled" / "new.png")
    os.utime(data / "unlabelled" / "new.png", ns=(1, 1))  # another file, another mtime
    assert Labeller(data, "pixels").table().embedded == 1  # only the new file


def test_a_crash_between_link_and_unlink_leaves_a_consistent_folder(tmp_path):
    """The journal links the new name, then unlinks the old one, then writes its line. A process
    killed after the link leaves one file under two names and no line: the folder counts it as
    labelled, the journal reads clean, and finish_moves drops the old name."""
    data = unlabelled_folder(tmp_path, 2)
    Labeller(data, "pixels").assign([data / "unlabelled" / "red_00.png"], "red")  # one line before
    code = f"""
import os, sys
from modelkit.labelling.session import Labeller
lab = Labeller({str(data)!r}, "pixels")
os.unlink = lambda *a, **k: os._exit(9)  # killed right after the link
lab.assign([{str(data / "unlabelled" / "red_01.png")!r}], "red")
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2])
    assert done.returncode == 9
    folder = open_folder(data)
    assert [Path(a).name for a, _ in folder.half_moved] == ["red_01.png"]
    assert str(data / "unlabelled" / "red_01.png") not in folder.unlabelled
    assert folder.counts() == {"red": 2}
    journal = Journal(data)
    assert [e.src for e in journal.active()] == ["unlabelled/red_00.png"] and not journal.skipped
    assert [Path(p).name for p in assign.finish_moves(folder)] == ["red_01.png"]
    assert (data / "red" / "red_01.png").exists() and not (
        data / "unlabelled" / "red_01.png"
    ).exists()
    assert assign.undo(data) is not None  # the recorded change still undoes


def test_a_symlinked_store_or_journal_is_refused_and_nothing_is_written_outside(tmp_path):
    data = unlabelled_folder(tmp_path, 1)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (data / CACHE_NAME).symlink_to(outside, target_is_directory=True)
    with pytest.raises(Exception, match="not a plain folder"):
        Labeller(data, "pixels").table()
    (data / CACHE_NAME).unlink()
    (data / JOURNAL_NAME).symlink_to(outside / "journal")
    with pytest.raises(JournalError, match="is a symlink"):
        Labeller(data, "pixels")
    assert list(outside.iterdir()) == []
    assert (data / "unlabelled" / "red_00.png").exists()


def test_near_duplicates_of_a_labelled_image_are_offered_the_same_label(tmp_path):
    data = unlabelled_folder(tmp_path, 3)
    from PIL import Image

    img = Image.open(data / "unlabelled" / "blue_00.png")
    img.resize((20, 24)).save(data / "unlabelled" / "blue_00_small.png")  # a resized copy
    lab = Labeller(data, "pixels")
    out = lab.assign([data / "unlabelled" / "blue_00.png"], "blue")
    assert str(data / "unlabelled" / "blue_00_small.png") in out.offers
    assert not any("red" in Path(p).name or "green" in Path(p).name for p in out.offers)


def test_the_bundled_backbone_embeds_once_and_the_revisit_reads_the_store(tmp_path):
    data = unlabelled_folder(tmp_path, 1)
    paths = [str(p) for p in sorted((data / "unlabelled").iterdir())]
    first = embed_folder_images(paths, data / CACHE_NAME, "pretrained", "cpu")
    assert first.features.shape == (3, 1280) and first.embedded == 3
    again = embed_folder_images(paths, data / CACHE_NAME, "pretrained", "cpu")
    assert again.embedded == 0 and np.array_equal(again.features, first.features)
    assert again.thumbs.shape == (3, 48, 48, 3)
    red = np.asarray(again.thumbs[0], dtype=float).mean((0, 1))  # blue_00, green_00, red_00
    assert red.argmax() == 2  # the thumbnail is the image: blue
