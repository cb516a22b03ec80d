"""build_report: unreadable files, duplicates, sizes and the text a person reads."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from modelkit.data.report import DatasetReport, build_report, format_report
from modelkit.data.scan import scan_dataset


def image(path: Path, size=(8, 6), color=(10, 20, 30), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, fmt)
    return path


def distinct(folder: Path, n: int, start: int = 0) -> list[Path]:
    """``n`` images with different bytes, so they are not duplicates of each other."""
    return [image(folder / f"i{start + i}.png", color=(start + i, 0, 0)) for i in range(n)]


def test_counts_exclude_unreadable_and_name_the_reason(tmp_path):
    distinct(tmp_path / "cats", 4)
    distinct(tmp_path / "dogs", 3, start=10)
    (tmp_path / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0not really")
    (tmp_path / "dogs" / "empty.png").write_bytes(b"")
    (tmp_path / "dogs" / "text.jpg").write_text("hello")
    index = scan_dataset(tmp_path, val_ratio=0)
    report = build_report(index, workers=2)
    assert report.counts == {"train": {"cats": 4, "dogs": 3}, "val": {"cats": 0, "dogs": 0}}
    by_name = {Path(u["path"]).name: u["reason"] for u in report.unreadable}
    assert set(by_name) == {"broken.jpg", "empty.png", "text.jpg"}
    assert "0 bytes" in by_name["empty.png"]
    assert "not an image" in by_name["text.jpg"]
    problems = "\n".join(report.problems)
    assert "cats/broken.jpg" in problems and "dogs/empty.png: empty file" in problems
    assert report.size_stats["count"] == 7


def test_duplicates_within_class_across_class_and_split(tmp_path):
    a = image(tmp_path / "train" / "cats" / "a.png", color=(1, 1, 1))
    a2 = tmp_path / "train" / "cats" / "a_copy.png"
    a2.write_bytes(a.read_bytes())
    b = image(tmp_path / "train" / "cats" / "b.png", color=(2, 2, 2))
    b_dog = tmp_path / "train" / "dogs" / "b_again.png"
    b_dog.parent.mkdir()
    b_dog.write_bytes(b.read_bytes())
    c = image(tmp_path / "train" / "dogs" / "c.png", color=(3, 3, 3))
    c_val = tmp_path / "val" / "dogs" / "c_val.png"
    c_val.parent.mkdir(parents=True)
    c_val.write_bytes(c.read_bytes())
    image(tmp_path / "val" / "cats" / "unique.png", color=(4, 4, 4))

    report = build_report(scan_dataset(tmp_path))
    groups = {Path(g["paths"][0]).name: g for g in report.duplicates}
    assert set(groups) == {"a.png", "b.png", "c.png"}

    same = groups["a.png"]
    assert [Path(p).name for p in same["paths"]] == ["a.png", "a_copy.png"]
    assert not same["cross_class"] and not same["cross_split"]

    cross_class = groups["b.png"]
    assert cross_class["cross_class"] and not cross_class["cross_split"]
    assert cross_class["classes"] == ["cats", "dogs"]

    cross_split = groups["c.png"]
    assert cross_split["cross_split"] and not cross_split["cross_class"]
    assert cross_split["splits"] == ["train", "val"]

    problems = report.problems
    assert len(problems) == 2  # same-class copies are not a problem
    assert any("different labels" in p and "b_again.png" in p for p in problems)
    assert any("more than one split" in p and "c_val.png" in p for p in problems)
    assert "1 group(s) of identical files" in format_report(report)


def test_to_dict_is_json_with_required_keys(tmp_path):
    distinct(tmp_path / "a", 3)
    (tmp_path / "a" / "bad.png").write_bytes(b"junk")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"x")
    report = build_report(scan_dataset(tmp_path))
    d = json.loads(json.dumps(report.to_dict()))
    for key in (
        "root",
        "layout",
        "classes",
        "counts",
        "unreadable",
        "ignored",
        "empty_classes",
        "too_small",
        "duplicates",
        "size_stats",
        "problems",
    ):
        assert key in d
    assert d["classes"] == ["a"]
    assert d["unreadable"][0]["path"].endswith("bad.png") and d["unreadable"][0]["reason"]
    assert d["ignored"][0].endswith(".DS_Store")


def test_size_stats_use_displayed_size(tmp_path):
    image(tmp_path / "a" / "1.png", size=(10, 20))
    image(tmp_path / "a" / "2.png", size=(30, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    big = tmp_path / "a" / "3.jpg"
    Image.new("RGB", (400, 200), (5, 5, 5)).save(big, exif=exif.tobytes())  # shown as 200x400
    report = build_report(scan_dataset(tmp_path, val_ratio=0))
    st = report.size_stats
    assert st["count"] == 3
    assert st["width"] == {"min": 10, "max": 200, "mean": 80.0, "median": 30}
    assert st["height"] == {"min": 20, "max": 400, "mean": 153.3, "median": 40}


def test_empty_and_too_small_classes_are_problems(tmp_path):
    distinct(tmp_path / "big", 5)
    distinct(tmp_path / "tiny", 1, start=50)
    (tmp_path / "empty").mkdir()
    report = build_report(scan_dataset(tmp_path))
    problems = report.problems
    assert "No images for class empty" in problems
    assert any(p.startswith("Class tiny has only 1 image") for p in problems)
    assert len(problems) == 2


def test_class_with_only_unreadable_files(tmp_path):
    distinct(tmp_path / "train" / "ok", 2)
    distinct(tmp_path / "val" / "ok", 1, start=9)
    (tmp_path / "train" / "bad").mkdir()
    (tmp_path / "train" / "bad" / "x.png").write_bytes(b"junk")
    distinct(tmp_path / "val" / "bad", 1, start=20)
    report = build_report(scan_dataset(tmp_path))
    assert report.counts["train"]["bad"] == 0
    assert "Class bad has no readable images in train" in report.problems


def test_progress_reported_and_never_raises(tmp_path):
    distinct(tmp_path / "a", 5)
    (tmp_path / "a" / "z.gif").write_bytes(b"GIF89a" + b"\x00" * 3)
    calls: list[tuple[int, int]] = []
    report = build_report(scan_dataset(tmp_path), progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 6) and calls[-1] == (6, 6)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(report.unreadable) == 1


def test_file_vanishing_between_scan_and_report(tmp_path):
    distinct(tmp_path / "a", 3)
    index = scan_dataset(tmp_path, val_ratio=0)
    os.remove(tmp_path / "a" / "i0.png")
    report = build_report(index)
    assert report.unreadable == [
        {"path": str(tmp_path / "a" / "i0.png"), "reason": "file not found"}
    ]
    assert report.counts["train"]["a"] == 2


def test_too_large_image_is_unreadable(tmp_path, monkeypatch):
    from modelkit.data import imageio

    distinct(tmp_path / "a", 2)
    image(tmp_path / "a" / "huge.png", size=(300, 300))
    monkeypatch.setattr(imageio, "MAX_PIXELS", 10_000)
    report = build_report(scan_dataset(tmp_path))
    assert [Path(u["path"]).name for u in report.unreadable] == ["huge.png"]
    assert "too large" in report.unreadable[0]["reason"]


def test_format_report_text(tmp_path):
    distinct(tmp_path / "cats", 5)
    distinct(tmp_path / "dogs", 5, start=10)
    (tmp_path / "dogs" / "broken.png").write_bytes(b"junk")
    text = format_report(build_report(scan_dataset(tmp_path, val_ratio=0.2, test_ratio=0.2)))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("class"))
    assert header.split() == ["class", "train", "val", "test", "total"]
    assert next(line for line in lines if line.startswith("cats")).split() == [
        "cats",
        "3",
        "1",
        "1",
        "5",
    ]
    assert next(line for line in lines if line.startswith("total")).split()[-1] == "10"
    assert "Width" in text and "Height" in text
    assert "Problems (1):" in text
    assert "dogs/broken.png" in text and "not an image" in text


def test_format_report_clean_and_empty(tmp_path):
    distinct(tmp_path / "a", 2)
    assert "No problems found." in format_report(build_report(scan_dataset(tmp_path)))
    report = DatasetReport(root="/x", layout="folders", classes=[], counts={"train": {}})
    assert "No readable images." in format_report(report)


@pytest.mark.skipif(sys.platform != "linux", reason="bytes file names are a Linux thing")
def test_non_utf8_names_print(tmp_path):
    distinct(tmp_path / "a", 1)
    raw = os.path.join(os.fsencode(tmp_path / "a"), b"bad\xe9.png")
    with open(raw, "wb") as f:
        f.write(b"junk")
    report = build_report(scan_dataset(tmp_path))
    text = format_report(report)
    text.encode("utf-8")  # printable on a UTF-8 terminal
    assert "bad\\xe9.png" in text  # the byte that is not UTF-8, shown as an escape
    json.dumps(report.to_dict())
