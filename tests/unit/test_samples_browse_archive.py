"""The digits sample, the folder browser, safe zip extraction and the Dataset page data."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import make_zip, png_bytes
from PIL import Image

from modelkit.data import samples
from modelkit.data.archive import ArchiveError, extract_dataset_zip, safe_folder_name
from modelkit.data.browse import (
    BrowseError,
    folder_fingerprint,
    list_subfolders,
    looks_like_dataset,
    open_folder,
    parent_within,
    resolve_inside,
)
from modelkit.data.report import build_report
from modelkit.data.samples import COMPLETE_MARKER, default_digits_dir, make_digits_dataset
from modelkit.data.scan import scan_dataset
from studio import dataset_view as plots_data

DARK, TINY = (10, 20, 30), (6, 5)  # the colour and size (w, h) of the images written here


def image(path: Path, color=DARK, size=TINY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color, size))
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- samples


def test_digits_dataset_is_class_folders_of_rgb_pngs(tmp_path):
    dest = make_digits_dataset(tmp_path / "digits", image_size=24, per_class=3)
    assert dest == tmp_path / "digits"
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == [str(d) for d in range(10)]
    assert (dest / COMPLETE_MARKER).exists()
    for d in range(10):
        files = sorted((dest / str(d)).iterdir())
        assert [f.name for f in files] == ["0.png", "1.png", "2.png"]
    with Image.open(dest / "7" / "0.png") as im:
        assert im.mode == "RGB" and im.size == (24, 24)
        arr = np.asarray(im)
    assert arr.min() < 100 < 200 < arr.max()  # dark ink on light paper
    index = scan_dataset(dest)
    assert index.classes == [str(d) for d in range(10)]
    assert sum(len(s) for s in index.splits.values()) == 30
    assert leftovers(tmp_path) == ["digits"]  # no temporary folders left


def test_digits_dataset_is_idempotent_and_rebuilds_on_new_settings(tmp_path, monkeypatch):
    dest = make_digits_dataset(tmp_path / "d", image_size=16, per_class=2)
    before = (dest / "0" / "0.png").stat().st_mtime_ns

    def boom(*a, **k):
        raise AssertionError("should not render again")

    monkeypatch.setattr(samples, "_render", boom)
    assert make_digits_dataset(dest, image_size=16, per_class=2) == dest
    assert (dest / "0" / "0.png").stat().st_mtime_ns == before
    monkeypatch.undo()

    make_digits_dataset(dest, image_size=16, per_class=4)
    assert len(list((dest / "3").iterdir())) == 4
    assert leftovers(tmp_path) == ["d"]


def test_digits_crash_leaves_no_half_dataset(tmp_path, monkeypatch):
    real = samples._render
    calls = {"n": 0}

    def flaky(pixels, size):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError("disk full")
        return real(pixels, size)

    monkeypatch.setattr(samples, "_render", flaky)
    with pytest.raises(OSError, match="disk full"):
        make_digits_dataset(tmp_path / "digits", image_size=16, per_class=2)
    assert leftovers(tmp_path) == []


def test_digits_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        make_digits_dataset(tmp_path / "x", image_size=4)
    with pytest.raises(ValueError, match="per_class"):
        make_digits_dataset(tmp_path / "x", per_class=0)
    assert default_digits_dir(tmp_path) == tmp_path / "samples" / "digits"


# ---------------------------------------------------------------- browse


@pytest.fixture
def tree(tmp_path):
    """root/ with a, b, .hidden, a file, links inside and outside; outside/ next to it."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    for d in ["B", "a", ".hidden", "a/deep"]:
        (root / d).mkdir(parents=True)
    outside.mkdir()
    (root / "file.txt").write_text("x")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "shortcut").symlink_to(root / "a" / "deep", target_is_directory=True)
    (root / "broken").symlink_to(tmp_path / "missing")
    return root, outside


def test_resolve_inside_accepts_paths_under_a_root(tree):
    root, _ = tree
    assert resolve_inside(root, [root]) == root.resolve()
    assert resolve_inside(str(root / "a" / "deep"), [root]) == (root / "a" / "deep").resolve()
    assert resolve_inside(root / "a" / ".." / "B", [root]) == (root / "B").resolve()
    # does not have to exist
    assert resolve_inside(root / "new", [root]) == (root / "new").resolve()


@pytest.mark.parametrize(
    "rel", ["..", "../outside", "a/../../outside", "escape", "escape/..", "escape/sub"]
)
def test_resolve_inside_refuses_traversal_and_symlinks_out(tree, rel):
    root, _ = tree
    with pytest.raises(BrowseError, match="outside the folders"):
        resolve_inside(root / rel, [root])


def test_resolve_inside_other_refusals(tree):
    root, outside = tree
    with pytest.raises(BrowseError, match="no folder"):
        resolve_inside("  ", [root])
    with pytest.raises(BrowseError, match="outside"):
        resolve_inside("/", [root])
    with pytest.raises(BrowseError, match="no folders are allowed"):
        resolve_inside(root, [])
    assert resolve_inside(outside, [root, outside]) == outside.resolve()


def test_open_folder_says_missing_or_file(tree):
    root, _ = tree
    with pytest.raises(BrowseError, match="not found"):
        open_folder(root / "nope", [root])
    with pytest.raises(BrowseError, match="is a file"):
        open_folder(root / "file.txt", [root])
    assert open_folder(root / "a", [root]) == (root / "a").resolve()


def test_list_subfolders_sorted_visible_and_inside(tree):
    root, _ = tree
    names = [p.name for p in list_subfolders(root, [root])]
    # hidden, file, link outside and broken link are left out; the link inside stays
    assert names == ["a", "B", "shortcut"]
    assert list_subfolders(root / "a" / "deep", [root]) == []


def test_list_subfolders_skips_unreadable_folders(tree, monkeypatch):
    root, _ = tree
    locked = root / "a"
    real_access = os.access

    def access(path, mode, *a, **k):
        if Path(path) == locked:
            return False
        return real_access(path, mode, *a, **k)

    monkeypatch.setattr(os, "access", access)
    assert [p.name for p in list_subfolders(root, [root])] == ["B", "shortcut"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any folder")
def test_list_subfolders_unreadable_for_real(tree):
    root, _ = tree
    (root / "a").chmod(0)
    try:
        assert "a" not in [p.name for p in list_subfolders(root, [root])]
        with pytest.raises(BrowseError, match="cannot read"):
            list_subfolders(root / "a", [root])
    finally:
        (root / "a").chmod(0o755)


def test_list_subfolders_refuses_outside_and_missing(tree):
    root, outside = tree
    with pytest.raises(BrowseError, match="outside"):
        list_subfolders(outside, [root])
    with pytest.raises(BrowseError, match="outside"):
        list_subfolders(root / "escape", [root])
    with pytest.raises(BrowseError, match="not found"):
        list_subfolders(root / "missing", [root])


def test_parent_within_stops_at_the_root(tree):
    root, outside = tree
    assert parent_within(root, [root]) is None
    assert parent_within(root / "a", [root]) == root.resolve()
    assert parent_within(root / "a" / "deep", [root]) == (root / "a").resolve()
    # nested roots: the inner root's parent is still inside the outer one
    assert parent_within(root / "a", [root / "a", root]) == root.resolve()
    with pytest.raises(BrowseError):
        parent_within(outside, [root])


def test_looks_like_dataset_hints(tmp_path):
    classes = tmp_path / "classes"
    image(classes / "cats" / "1.png")
    image(classes / "dogs" / "1.jpg")
    assert looks_like_dataset(classes) == "2 class folders"
    splits = tmp_path / "splits"
    (splits / "train" / "x").mkdir(parents=True)
    (splits / "val" / "x").mkdir(parents=True)
    assert looks_like_dataset(splits) == "train/val splits"
    loose = tmp_path / "loose"
    image(loose / "a.png")
    assert looks_like_dataset(loose) == "images but no class folders"
    empty = tmp_path / "empty"
    (empty / "docs").mkdir(parents=True)
    (empty / "docs" / "a.txt").write_text("x")
    assert looks_like_dataset(empty) is None
    assert looks_like_dataset(tmp_path / "missing") is None


def test_folder_fingerprint_changes_when_files_change(tmp_path):
    image(tmp_path / "cats" / "1.png")
    first = folder_fingerprint(tmp_path)
    assert folder_fingerprint(tmp_path) == first
    image(tmp_path / "cats" / "2.png")
    second = folder_fingerprint(tmp_path)
    assert second != first
    (tmp_path / "cats" / "2.png").rename(tmp_path / "cats" / "3.png")
    os.utime(tmp_path / "cats", ns=(1, 1))  # even if the folder time is restored by a tool
    image(tmp_path / "dogs" / "1.png")
    assert folder_fingerprint(tmp_path) not in (first, second)


# ---------------------------------------------------------------- archive


def test_extract_returns_single_top_folder_and_skips_junk(tmp_path):
    data = make_zip(
        {
            "pets/cats/1.png": png_bytes((1, 1, 1), TINY),
            "pets/dogs/1.png": png_bytes((2, 2, 2), TINY),
            "pets/dogs/.DS_Store": b"junk",
            "__MACOSX/pets/cats/._1.png": b"junk",
            "pets/Thumbs.db": b"junk",
        }
    )
    dest_parent = tmp_path / "uploads"
    root = extract_dataset_zip(data, dest_parent, name="My Pets!")
    assert root == dest_parent / "My_Pets" / "pets"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "cats",
        "cats/1.png",
        "dogs",
        "dogs/1.png",
    ]
    assert not (dest_parent / "My_Pets" / "__MACOSX").exists()
    assert scan_dataset(root).classes == ["cats", "dogs"]
    assert leftovers(dest_parent) == ["My_Pets"]


def test_extract_from_path_and_file_object_makes_unique_names(tmp_path):
    data = make_zip({"cats/1.png": png_bytes(DARK, TINY), "dogs/1.png": png_bytes((9, 9, 9), TINY)})
    zpath = tmp_path / "animals.zip"
    zpath.write_bytes(data)
    dest_parent = tmp_path / "uploads"
    first = extract_dataset_zip(zpath, dest_parent)
    assert first == dest_parent / "animals"  # two top-level folders: the folder itself
    fobj = io.BytesIO(data)
    fobj.name = "animals.zip"
    second = extract_dataset_zip(fobj, dest_parent)
    assert second == dest_parent / "animals-2"
    assert (second / "dogs" / "1.png").read_bytes() == png_bytes((9, 9, 9), TINY)
    assert extract_dataset_zip(data, dest_parent) == dest_parent / "dataset"


@pytest.mark.parametrize(
    "bad",
    [
        "../evil.png",
        "pets/../../evil.png",
        "/etc/evil.png",
        "C:/evil.png",
        "c:evil.png",
        "..\\evil.png",
        "\\\\server\\share\\evil.png",
    ],
)
def test_extract_refuses_path_traversal(tmp_path, bad):
    # zipfile's own writer normalises some names; write the raw name with a ZipInfo
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pets/ok.png", png_bytes(DARK, TINY))
        info = zipfile.ZipInfo("x")
        info.filename = bad
        zf.writestr(info, b"evil")
    dest_parent = tmp_path / "uploads"
    with pytest.raises(ArchiveError) as err:
        extract_dataset_zip(buf.getvalue(), dest_parent)
    assert repr(bad) in str(err.value)
    assert leftovers(dest_parent) == []
    assert not (tmp_path / "evil.png").exists()


def test_extract_refuses_symlinks(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pets/ok.png", png_bytes(DARK, TINY))
        info = zipfile.ZipInfo("pets/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="'pets/link' is a symbolic link"):
        extract_dataset_zip(buf.getvalue(), tmp_path / "u")
    assert leftovers(tmp_path / "u") == []


def test_extract_refuses_zip_bombs_and_oversize(tmp_path):
    bomb = make_zip(
        {"pets/a.png": png_bytes(DARK, TINY), "pets/zeros.bin": b"\0" * (4 * 1024 * 1024)}
    )
    with pytest.raises(ArchiveError, match="'pets/zeros.bin' expands .*zip bomb"):
        extract_dataset_zip(bomb, tmp_path / "u")
    # the same entries are fine with a generous ratio
    assert extract_dataset_zip(bomb, tmp_path / "u", max_ratio=1e6).name == "pets"

    big = make_zip({f"pets/{i}.bin": bytes(range(256)) * 8 for i in range(4)})  # 2 KiB each
    with pytest.raises(ArchiveError, match="more than .* GiB .*'pets/2.bin'"):
        extract_dataset_zip(big, tmp_path / "v", max_total_bytes=5000)
    with pytest.raises(ArchiveError, match="more than 3 files"):
        extract_dataset_zip(big, tmp_path / "v", max_files=3)
    assert leftovers(tmp_path / "v") == []


def test_extract_refuses_encrypted_entries(tmp_path):
    data = bytearray(make_zip({"pets/a.png": png_bytes(DARK, TINY)}, zipfile.ZIP_STORED))
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 6] |= 0x1  # general purpose flag bit 0: encrypted
    data[central + 8] |= 0x1
    with pytest.raises(ArchiveError, match="password-protected"):
        extract_dataset_zip(bytes(data), tmp_path / "u")


def test_extract_not_a_zip_or_empty(tmp_path):
    with pytest.raises(ArchiveError, match="not a readable zip"):
        extract_dataset_zip(b"this is not a zip", tmp_path / "u")
    fake = tmp_path / "photos.zip"
    fake.write_bytes(png_bytes(DARK, TINY))
    with pytest.raises(ArchiveError, match="photos.zip is not a readable zip"):
        extract_dataset_zip(fake, tmp_path / "u")
    with pytest.raises(ArchiveError, match="not found"):
        extract_dataset_zip(tmp_path / "missing.zip", tmp_path / "u")
    with pytest.raises(ArchiveError, match="contains no files"):
        extract_dataset_zip(make_zip({"__MACOSX/x": b"1", ".hidden": b"2"}), tmp_path / "u")
    assert leftovers(tmp_path / "u") == []


def test_extract_corrupt_member_cleans_up(tmp_path):
    data = bytearray(make_zip({"pets/a.bin": bytes(range(256)) * 64}, zipfile.ZIP_STORED))
    start = data.find(bytes(range(256)))
    data[start + 10] ^= 0xFF  # CRC no longer matches
    with pytest.raises(ArchiveError, match="cannot extract 'pets/a.bin'"):
        extract_dataset_zip(bytes(data), tmp_path / "u")
    assert leftovers(tmp_path / "u") == []


def test_safe_folder_name():
    assert safe_folder_name("../../etc") == "etc"
    assert safe_folder_name("...") == "dataset"
    assert safe_folder_name("my photos (2024)") == "my_photos_2024"
    assert len(safe_folder_name("x" * 300)) == 64


# ---------------------------------------------------------------- page data


@pytest.fixture
def messy(tmp_path):
    root = tmp_path / "messy"
    for i in range(5):
        image(root / "cats" / f"c{i}.png", color=(i + 1, 0, 0))
        image(root / "dogs" / f"d{i}.png", color=(0, i + 1, 0))
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG nope")
    (root / "dogs" / "same_as_cat.png").write_bytes((root / "cats" / "c1.png").read_bytes())
    (root / "dogs" / "notes.pdf").write_bytes(b"%PDF")
    (root / "dogs" / ".DS_Store").write_bytes(b"x")
    (root / "birds").mkdir()
    index = scan_dataset(root)
    return index, build_report(index, workers=2)


def test_counts_bar_one_trace_per_split():
    fig = plots_data.counts_bar({"train": {"a": 3, "b": 1}, "val": {"a": 1, "b": 0}})
    assert [t.name for t in fig.data] == ["train", "val"]
    assert list(fig.data[0].x) == ["a", "b"] and list(fig.data[0].y) == [3, 1]
    assert fig.data[0].marker.color != fig.data[1].marker.color
    assert fig.layout.barmode == "group"
    many = plots_data.counts_bar({"train": {f"c{i}": i for i in range(50)}})
    assert many.layout.xaxis.tickangle == -60


def test_problem_and_duplicate_rows_name_the_files(messy):
    index, report = messy
    rows = plots_data.problem_rows(report, index)
    broken = [r for r in rows if r["file"] == os.path.join("cats", "broken.png")]
    assert broken and broken[0]["class"] == "cats" and broken[0]["split"] in ("train", "val")
    assert any(r["class"] == "birds" and r["problem"] == "no images" for r in rows)
    dups = plots_data.duplicate_rows(report)
    assert len(dups) == 1 and dups[0]["cross_class"] and dups[0]["files"] == 2
    assert "dogs/same_as_cat.png" in dups[0]["paths"].replace(os.sep, "/")


def test_dataset_view_tables_and_samples(messy):
    index, report = messy
    view = plots_data.dataset_view(index, report, per_class=3)
    assert view.images == 11
    assert [r["split"] for r in view.splits] == ["train", "val"]
    assert view.counts[-1]["class"] == "total" and view.counts[-1]["total"] == 11
    assert "automatically" in view.split_text
    assert len(view.samples["cats"]) == 3
    assert all("broken" not in p for p in view.samples["cats"])
    assert view.samples["birds"] == []
    assert view.skipped == [os.path.join("dogs", "notes.pdf")]  # .DS_Store is not listed
    assert view.sizes[0]["min"] == 6 and view.sizes[1]["max"] == 5


def test_thumbnails_and_contact_sheet(tmp_path):
    small = image(tmp_path / "small.png", size=(8, 4))
    big = image(tmp_path / "big.png", size=(300, 100))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert plots_data.thumbnail(small, 64).shape == (32, 64, 3)  # enlarged to fit
    assert plots_data.thumbnail(big, 60).shape == (20, 60, 3)
    assert plots_data.thumbnail(bad) is None
    sheet = plots_data.contact_sheet([str(small), str(bad), str(big)], size=40, gap=2)
    assert sheet.shape == (40, 82, 3) and sheet.dtype == np.uint8
    assert plots_data.contact_sheet([str(bad)]) is None
