"""Which identical files go, and going through the Clean journal (modelkit.data.duplicates)."""

from __future__ import annotations

from pathlib import Path

from helpers import png_bytes

from modelkit.cleaning.journal import TRASH_NAME, Journal
from modelkit.data.duplicates import (
    conflicting_copies,
    extra_copies,
    remove_files,
    undo_removals,
)
from modelkit.data.report import build_report
from modelkit.data.scan import scan_dataset


def write(path: Path, colour) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(colour, 8))


def test_train_copy_is_kept_and_conflicts_are_offered_whole(tmp_path):
    for split in ("train", "val"):
        for k, cls in enumerate(("a", "b")):
            for i in range(2):
                write(
                    tmp_path / split / cls / f"{i}.png",
                    (k * 100, i * 50, 7 if split == "val" else 3),
                )
    same = png_bytes((1, 2, 3), 8)
    (tmp_path / "val" / "a" / "leak.png").write_bytes(same)
    (tmp_path / "train" / "a" / "zz_orig.png").write_bytes(same)  # later name, earlier split
    other = png_bytes((9, 9, 9), 8)
    (tmp_path / "train" / "a" / "x.png").write_bytes(other)
    (tmp_path / "train" / "b" / "x.png").write_bytes(other)
    report = build_report(scan_dataset(tmp_path), workers=2)
    assert extra_copies(report) == [str(tmp_path / "val" / "a" / "leak.png")]
    assert sorted(conflicting_copies(report)) == [
        str(tmp_path / "train" / "a" / "x.png"),
        str(tmp_path / "train" / "b" / "x.png"),
    ]


def test_remove_goes_to_the_trash_and_undo_brings_it_back(tmp_path):
    for i in range(3):
        write(tmp_path / "a" / f"{i}.png", (i * 60, 0, 0))
    journal = Journal(tmp_path)
    done = remove_files(journal, [str(tmp_path / "a" / "1.png"), str(tmp_path / "a" / "gone.png")])
    assert len(done.ids) == 1 and len(done.errors) == 1 and "gone.png" in done.errors[0]
    assert (tmp_path / TRASH_NAME / "a" / "1.png").is_file()
    back = undo_removals(journal, [*done.ids, 999])  # an id not in force is passed over
    assert len(back.entries) == 1 and not back.errors
    assert (tmp_path / "a" / "1.png").is_file() and journal.active() == []
