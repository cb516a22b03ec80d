"""The label-issue finder and its journal, on tiny generated images (colour-thumbnail features,
so no model is needed)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelkit.cleaning.duplicates import near_duplicate_groups
from modelkit.cleaning.finder import find_issues, resplit
from modelkit.cleaning.issues import confident_learning, out_of_fold_probs
from modelkit.cleaning.journal import JOURNAL_NAME, TRASH_NAME, Journal, JournalError
from modelkit.data.scan import scan_dataset


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> content digest of every file under root, dot-files included."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != JOURNAL_NAME:
            out[p.relative_to(root).as_posix()] = hashlib.md5(p.read_bytes()).hexdigest()
    return out


def _flip(root: Path, moves: list[tuple[str, str]]) -> set[str]:
    flipped = set()
    for rel, new_class in moves:
        src = root / rel
        dst = root / new_class / f"flipped-{src.name}"
        os.replace(src, dst)
        flipped.add(str(dst))
    return flipped


def _blocks(seed: int, size: int = 48) -> Image.Image:
    """A random 4x4 grid of colours: every seed looks different from every other."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "RGB")
    return small.resize((size, size), Image.NEAREST)


def test_flipped_labels_rank_first(make_dataset):
    data = make_dataset(num_classes=3, per_class=12)
    flipped = _flip(
        data,
        [("red/red_03.png", "green"), ("green/green_07.png", "blue"), ("blue/blue_01.png", "red")],
    )
    report = find_issues(data, "pixels", folds=5)
    first = {i.path for i in report.issues[:3]}
    assert first == flipped
    assert {i.path for i in report.flagged} == flipped
    by_path = {i.path: i for i in report.issues}
    assert by_path[str(data / "green" / "flipped-red_03.png")].suggested == "red"
    assert by_path[str(data / "red" / "flipped-blue_01.png")].given == "red"


def test_confident_learning_thresholds_and_joint():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7], [0.2, 0.8]])
    cl = confident_learning(probs, labels)
    assert cl.thresholds == pytest.approx([0.5 + 0.4 / 3 * 1, 0.8], abs=0.04)
    assert cl.flagged.tolist() == [False, False, True, False, False, False]
    assert cl.suggested[2] == 1
    assert cl.confident_joint[0, 1] == 1
    assert cl.ranking()[0] == 2


def test_out_of_fold_probabilities_never_see_their_own_image():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = np.array([0, 1] * 20)  # noise: a head that saw the image would fit it; out of fold not
    probs = out_of_fold_probs(x, y, 2, folds=5)
    assert probs.shape == (40, 2)
    assert np.allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == y).mean() < 0.85


def test_a_resized_copy_is_a_near_duplicate_and_straddling_is_flagged(tmp_path):
    data = tmp_path / "data"
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (data / split / cls).mkdir(parents=True)
    for i in range(10):
        _blocks(i).save(data / "train" / ("a" if i % 2 else "b") / f"img{i}.png")
    for i in range(10, 14):
        _blocks(i).save(data / "val" / ("a" if i % 2 else "b") / f"img{i}.png")
    _blocks(3).resize((40, 40)).save(data / "val" / "a" / "copy_of_img3.jpg", quality=90)
    report = find_issues(data, "pixels", folds=3)
    assert len(report.groups) == 1
    group = report.groups[0]
    assert sorted(Path(p).name for p in group.paths) == ["copy_of_img3.jpg", "img3.png"]
    assert group.straddles and sorted(group.splits) == ["train", "val"]

    journal = Journal(data)
    moved = resplit(report, journal)
    assert [(e.src, e.dst) for e in moved] == [
        ("val/a/copy_of_img3.jpg", "train/a/copy_of_img3.jpg")
    ]
    assert not find_issues(data, "pixels", folds=3).groups[0].straddles
    journal.undo_all()
    assert (data / "val" / "a" / "copy_of_img3.jpg").is_file()


def test_resplit_refuses_class_folders_with_the_reason(make_dataset):
    data = make_dataset(num_classes=2, per_class=6)
    report = find_issues(data, "pixels", folds=2)
    with pytest.raises(JournalError, match="drawn at training time"):
        resplit(report, Journal(data))


def test_distinct_images_form_no_groups():
    rng = np.random.default_rng(0)
    assert near_duplicate_groups(rng.normal(size=(50, 64))) == []


def test_relabel_remove_undo_and_undo_all_restore_the_exact_files(make_dataset):
    data = make_dataset(num_classes=3, per_class=4)
    before = _tree(data)
    journal = Journal(data)
    e1 = journal.relabel(data / "red" / "red_00.png", data / "green")
    e2 = journal.remove(data / "blue" / "blue_02.png")
    e3 = journal.keep(data / "green" / "green_01.png")
    assert (data / "green" / "red_00.png").is_file() and not (data / "red" / "red_00.png").exists()
    assert (data / TRASH_NAME / "blue" / "blue_02.png").is_file()
    assert [e.action for e in journal.active()] == ["relabel", "remove", "keep"]
    assert (e1.src, e1.dst) == ("red/red_00.png", "green/red_00.png")
    assert e2.dst == f"{TRASH_NAME}/blue/blue_02.png" and e3.src == e3.dst

    journal.undo(e2.id)
    assert (data / "blue" / "blue_02.png").is_file()
    assert [e.id for e in journal.active()] == [e1.id, e3.id]
    lines = [json.loads(x) for x in (data / JOURNAL_NAME).read_text().splitlines()]
    assert lines[-1]["action"] == "undo" and lines[-1]["undoes"] == e2.id

    journal.undo_all()
    assert journal.active() == []
    assert {k: v for k, v in _tree(data).items() if not k.startswith(TRASH_NAME)} == before
    with pytest.raises(JournalError, match="no change #1"):
        journal.undo(e1.id)


def test_a_name_clash_gets_a_new_name_and_never_overwrites(make_dataset):
    data = make_dataset(num_classes=2, per_class=3)
    clash = data / "green" / "red_00.png"
    shutil.copy(data / "green" / "green_00.png", clash)
    kept = clash.read_bytes()
    journal = Journal(data)
    entry = journal.relabel(data / "red" / "red_00.png", data / "green")
    assert entry.dst == "green/red_00 (2).png"
    assert clash.read_bytes() == kept
    # the old place is taken again before the undo: the file comes back next to it
    (data / "red" / "red_00.png").write_bytes(b"new file")
    journal.undo(entry.id)
    assert (data / "red" / "red_00.png").read_bytes() == b"new file"
    assert (data / "red" / "red_00 (2).png").is_file()


def test_the_scanner_ignores_the_trash_and_the_journal(make_dataset):
    data = make_dataset(num_classes=2, per_class=4)
    journal = Journal(data)
    journal.remove(data / "red" / "red_01.png")
    index = scan_dataset(data)
    assert index.classes == ["green", "red"]
    paths = [s.path for _, s in index.all_samples()]
    assert len(paths) == 7 and not any(TRASH_NAME in p for p in paths)


def test_journal_refuses_files_outside_the_dataset(make_dataset, tmp_path):
    data = make_dataset(num_classes=2, per_class=2)
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"x")
    with pytest.raises(JournalError, match="not inside the dataset"):
        Journal(data).remove(outside)
    assert outside.is_file()


def test_a_truncated_journal_line_is_skipped(make_dataset):
    data = make_dataset(num_classes=2, per_class=2)
    journal = Journal(data)
    journal.remove(data / "red" / "red_00.png")
    with open(data / JOURNAL_NAME, "a") as f:
        f.write('{"id": 2, "act')  # a crash mid-write
    assert [e.action for e in journal.active()] == ["remove"]
    journal.remove(data / "green" / "green_00.png")  # the next line is whole again
    assert [e.action for e in journal.active()] == ["remove", "remove"]


def test_bootstrap_interval_contains_the_accuracy_and_narrows_with_more_images():
    from modelkit.cleaning.compare import bootstrap_interval

    rng = np.random.default_rng(0)
    small = rng.random(50) < 0.8
    large = rng.random(2000) < 0.8
    lo_s, hi_s = bootstrap_interval(small)
    lo_l, hi_l = bootstrap_interval(large)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < hi_s - lo_s
    assert bootstrap_interval(np.ones(10)) == (1.0, 1.0)


def test_comparing_a_run_with_itself_shows_no_change(trained_run, tmp_path):
    from modelkit.cleaning.compare import compare_runs

    other = tmp_path / "copy"
    shutil.copytree(trained_run, other)
    cmp = compare_runs(trained_run, other)
    assert cmp.before.accuracy == cmp.after.accuracy
    assert cmp.before.low <= cmp.before.accuracy <= cmp.before.high
    assert [r["class"] for r in cmp.per_class] == ["blue", "green", "red"]
    assert all(r["delta"] == 0 for r in cmp.per_class)


def test_a_run_can_embed_the_images(trained_run, tmp_path):
    data = Path(json.loads((trained_run / "config.json").read_text())["data_dir"])
    report = find_issues(data, str(trained_run), folds=3)
    assert report.source == f"run {trained_run.name}" and len(report.issues) == 30


def test_a_class_of_one_image_is_scored_and_too_little_data_is_refused():
    from modelkit.cleaning.issues import ScoringError

    rng = np.random.default_rng(0)
    probs = out_of_fold_probs(rng.normal(size=(11, 4)), np.array([0] * 10 + [2]), 3, folds=5)
    assert probs.shape == (11, 3) and np.allclose(probs.sum(1), 1)
    with pytest.raises(ScoringError, match="one per class"):
        out_of_fold_probs(rng.normal(size=(2, 4)), np.array([0, 1]), 2)
    with pytest.raises(ScoringError, match="at least 2 classes"):
        out_of_fold_probs(rng.normal(size=(4, 4)), np.array([1, 1, 1, 1]), 2)
