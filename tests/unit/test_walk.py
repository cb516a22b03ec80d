"""The one folder walk: what a person sees listed from a folder of photos, and in which order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelkit.data import walk as walk_module
from modelkit.data.walk import FOLDER_LINK, NOT_AN_IMAGE, walk_images


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "photos"
    for name in ("b.jpg", "a.PNG", "notes.txt", ".hidden.jpg", "Thumbs.db", "sub/z.jpg"):
        touch(root / name)
    touch(root / "sub" / "deeper" / "c.webp")
    touch(root / "another" / "m.jpeg")
    touch(root / ".trash" / "gone.jpg")
    return root


def test_images_in_name_order_files_before_subfolders_and_stable(tree):
    found = list(walk_images([tree]))
    assert [f.rel for f in found] == [
        "a.PNG",
        "b.jpg",
        "another/m.jpeg",
        "sub/z.jpg",
        "sub/deeper/c.webp",
    ]
    assert [f.path for f in found] == [os.path.join(tree, f.rel) for f in found]
    assert found == list(walk_images([tree]))


def test_dot_files_and_system_files_are_never_seen_other_files_are_reported(tree):
    skipped: list[tuple[str, str]] = []
    names = [f.rel for f in walk_images([tree], on_skip=lambda p, why: skipped.append((p, why)))]
    assert not any(".hidden" in n or ".trash" in n for n in names)
    assert skipped == [(str(tree / "notes.txt"), NOT_AN_IMAGE)]


def test_a_link_to_a_folder_is_not_entered_and_a_linked_file_says_so(tree, tmp_path):
    outside = tmp_path / "outside"
    touch(outside / "secret.jpg")
    os.symlink(outside, tree / "link")
    os.symlink(outside / "secret.jpg", tree / "linked.jpg")
    skipped: list[tuple[str, str]] = []
    found = list(walk_images([tree], on_skip=lambda p, why: skipped.append((p, why))))
    assert "link/secret.jpg" not in [f.rel for f in found]
    assert (str(tree / "link"), FOLDER_LINK) in skipped
    linked = [f for f in found if f.rel == "linked.jpg"]
    assert linked and linked[0].is_link and not any(f.is_link for f in found if f is not linked[0])


def test_a_folder_that_cannot_be_listed_is_reported_and_the_rest_still_walked(tree, monkeypatch):
    real = os.scandir

    def scandir(path):  # running as root, chmod cannot refuse a listing: refuse it here
        if os.path.basename(path) == "sub":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(walk_module.os, "scandir", scandir)
    errors: list[tuple[str, str]] = []
    found = [f.rel for f in walk_images([tree], on_error=lambda p, why: errors.append((p, why)))]
    assert found == ["a.PNG", "b.jpg", "another/m.jpeg"]
    assert errors == [(str(tree / "sub"), "cannot list the folder: Permission denied")]


def test_a_named_file_comes_back_as_it_is_and_shallow_stays_in_the_folder(tree):
    file = tree / "sub" / "z.jpg"
    assert [(f.path, f.rel) for f in walk_images([file])] == [(str(file), "z.jpg")]
    assert [f.rel for f in walk_images([tree], deep=False)] == ["a.PNG", "b.jpg"]
    trailing = [f.rel for f in walk_images([str(tree) + os.sep])]
    assert trailing == [f.rel for f in walk_images([tree])]
