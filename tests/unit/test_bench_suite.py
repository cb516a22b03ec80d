"""The public benchmark suite: its manifest says what the issue asks of it, build.py builds a
set from a pinned git commit into modelkit's split layout, and bench_suite.py resumes."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "benchmarks" / "suite"
REQUIRED_KINDS = {
    "few-shot",
    "many-classes",
    "tiny-images",
    "grayscale-medical",
    "satellite-aerial",
    "textures",
    "fine-grained",
    "drawings",
    "imbalanced",
    "large-photos",
}
EXCLUDED = re.compile(r"flower|scene|weather|rock", re.IGNORECASE)  # the independent check's


@pytest.fixture(scope="module")
def build():
    sys.path.insert(0, str(SUITE))
    try:
        yield importlib.import_module("build")
    finally:
        sys.path.remove(str(SUITE))


def test_manifest_covers_every_kind_with_pinned_licensed_sources():
    manifest = json.loads((SUITE / "manifest.json").read_text())
    sets = manifest["sets"]
    names = [s["name"] for s in sets]
    assert len(sets) >= 10 and len(set(names)) == len(names)
    assert REQUIRED_KINDS <= {kind for s in sets for kind in s["kinds"]}
    assert {"caltech101", "hymenoptera"} <= set(names)
    for s in sets:
        source = s["source"]
        if "local" in source:
            assert source["local"].startswith("../shared/datasets/"), s["name"]
        else:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", source["repo"]), s["name"]
            assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), s["name"]
        assert len(s["licence"]) > 20 and s["why"] and s["image_size"], s["name"]
        assert s["class_count"] == len(s["classes"]) >= 2, s["name"]
        assert s["take"]["test"] > 0 and s["take"]["val"] > 0, s["name"]
        assert not EXCLUDED.search(" ".join([s["name"], *s["kinds"]])), s["name"]
    by_kind = {k: [s for s in sets if k in s["kinds"]] for k in REQUIRED_KINDS}
    assert all(s["take"]["train"] <= 10 for s in by_kind["few-shot"])
    assert all(s["class_count"] >= 100 for s in by_kind["many-classes"])
    longtail = [s["train_longtail"] for s in by_kind["imbalanced"]]
    assert longtail and all(t["ratio"] >= 20 for t in longtail)


def _commit_tiny_repo(repo: Path) -> str:
    """A git repository with train/ and test/ class folders (as many public sets come), one
    large image, one truncated JPEG and one text file; returns the commit."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 7), ("test", 3)):
        for cls, colour in (("cat", 0), ("dog", 1), ("eel", 2)):
            folder = repo / "data" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 60, (24, 32, 3), dtype=np.uint8)
                pixels[..., colour] += 150
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    Image.new("RGB", (900, 300), (200, 10, 10)).save(repo / "data/train/cat/big.jpg")
    (repo / "data/train/dog/broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (repo / "data/train/eel/notes.txt").write_text("not an image")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tiny"], check=True)
    return subprocess.run(
        [*git[:3], "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _entry(commit: str, **changes) -> dict:
    entry = {
        "name": "tiny",
        "kinds": ["few-shot"],
        "source": {"repo": "someone/tiny", "commit": commit, "path": "data"},
        "licence": "CC0",
        "class_dirs": ["train", "test"],
        "take": {"test": 2, "val": 2, "train": 3},
    }
    return entry | changes


def _listing(folder: Path) -> dict[str, dict[str, set[str]]]:
    return {
        split: {c.name: {f.name for f in c.iterdir()} for c in (folder / split).iterdir()}
        for split in ("train", "val", "test")
    }


def _write_manifest(path: Path, seed: int, max_side: int, *entries: dict) -> list[str]:
    path.write_text(json.dumps({"seed": seed, "max_side": max_side, "sets": list(entries)}))
    return ["--manifest", str(path)]


def test_build_makes_a_seeded_split_layout_from_a_git_commit(tmp_path, build):
    mirrors = tmp_path / "mirrors"
    commit = _commit_tiny_repo(mirrors / "someone+tiny" / "repo")
    args = _write_manifest(tmp_path / "m.json", 0, 64, _entry(commit))
    args += ["--mirrors", str(mirrors)]
    assert build.main([*args, "--out", str(tmp_path / "a")]) == 0
    built = tmp_path / "a" / "tiny"
    record = json.loads((built / "suite_set.json").read_text())
    layout = _listing(built)
    # every class gets 2 test, 2 val and 3 train images, drawn without overlap
    for split, n in (("test", 2), ("val", 2), ("train", 3)):
        assert {c: len(f) for c, f in layout[split].items()} == {"cat": n, "dog": n, "eel": n}
    for cls in ("cat", "dog", "eel"):
        drawn = [{src for _, src in record["files"][s][cls]} for s in ("train", "val", "test")]
        assert sum(map(len, drawn)) == len(set().union(*drawn)) == 7
    assert record["source"]["commit"] == commit
    assert "train/eel/notes.txt" in {s["path"] for s in record["skipped"]}
    for image in built.glob("*/*/*"):  # real images, no larger than max_side
        with Image.open(image) as im:
            im.load()
            assert max(im.size) <= 64
    from modelkit.data.layouts import find_split_dirs

    dirs = sorted(p.name for p in built.iterdir() if p.is_dir())
    assert find_split_dirs(dirs, str(built)) == {"train": "train", "val": "val", "test": "test"}
    # the same seed gives the same split, built again elsewhere
    assert build.main([*args, "--out", str(tmp_path / "b")]) == 0
    assert _listing(tmp_path / "b" / "tiny") == layout


def test_build_reports_bad_files_shrinks_large_ones_and_keeps_test_when_train_shrinks(
    tmp_path, build
):
    mirrors = tmp_path / "mirrors"
    commit = _commit_tiny_repo(mirrors / "someone+tiny" / "repo")
    full = _entry(commit, take={"test": 2, "val": 2, "train": None})
    args = _write_manifest(tmp_path / "m.json", 3, 512, full) + ["--mirrors", str(mirrors)]
    assert build.main([*args, "--out", str(tmp_path / "full")]) == 0
    record = json.loads((tmp_path / "full" / "tiny" / "suite_set.json").read_text())
    reasons = {s["path"]: s["reason"] for s in record["skipped"]}
    assert reasons["train/dog/broken.jpg"].startswith("does not decode")
    per_class = record["per_class"]
    totals = {c: sum(per_class[s][c] for s in per_class) for c in ("cat", "dog", "eel")}
    assert totals == {"cat": 11, "dog": 10, "eel": 10}  # the big image in, broken and txt out
    files = record["files"]
    ((name, split),) = [
        (n, s) for s in files for n, src in files[s]["cat"] if src.endswith("big.jpg")
    ]
    with Image.open(tmp_path / "full" / "tiny" / split / "cat" / name) as im:
        assert im.size == (512, 171)  # 900x300 shrunk to max_side, aspect kept
    # a long-tail variant of the same set: fewer training images, the same test and val
    tail = _entry(commit, take={"test": 2, "val": 2}, train_longtail={"largest": 4, "ratio": 4})
    args = _write_manifest(tmp_path / "m.json", 3, 512, tail) + ["--mirrors", str(mirrors)]
    assert build.main([*args, "--out", str(tmp_path / "tail")]) == 0
    tail_record = json.loads((tmp_path / "tail" / "tiny" / "suite_set.json").read_text())
    assert tail_record["per_class"]["train"] == {"cat": 4, "dog": 2, "eel": 1}
    full_layout = _listing(tmp_path / "full" / "tiny")
    tail_layout = _listing(tmp_path / "tail" / "tiny")
    assert tail_layout["test"] == full_layout["test"] and tail_layout["val"] == full_layout["val"]


def test_build_says_how_to_get_a_source_it_cannot_find(tmp_path, build, capsys):
    args = _write_manifest(tmp_path / "m.json", 0, 64, _entry("0" * 40))
    assert build.main([*args, "--mirrors", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "tiny: NOT BUILT" in err and "--clone-dir" in err and "someone/tiny" in err
    assert not (tmp_path / "o" / "tiny").exists()


def test_bench_suite_resumes_and_tabulates(tmp_path, monkeypatch):
    script = ROOT / "benchmarks" / "bench_suite.py"
    spec = importlib.util.spec_from_file_location("bench_suite", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (tmp_path / "data" / "tiny").mkdir(parents=True)
    (tmp_path / "data" / "tiny" / "suite_set.json").write_text("{}")
    out = tmp_path / "suite.json"
    done = {"test_acc": 0.5, "wall_s": 60.0, "budget_share": 1.0, "path": "smallresnet/none"}
    out.write_text(json.dumps({"cells": {"tiny|auto|60": done}}))
    calls = []

    def fake_run(data, recipe, budget, runs, extra):
        calls.append((data.name, recipe, budget))
        return {**done, "test_acc": 0.75, "wall_s": budget * 0.9, "budget_share": 0.9}

    monkeypatch.setattr(bench, "run_cell", fake_run)
    argv = ["--data", str(tmp_path / "data"), "--sets", "tiny", "--budgets", "1m,2m"]
    assert bench.main([*argv, "--recipes", "auto", "--json", str(out)]) == 0
    assert calls == [("tiny", "auto", 120.0)]  # the 1-minute cell was there already
    cells = json.loads(out.read_text())["cells"]
    assert cells["tiny|auto|120"]["test_acc"] == 0.75 and cells["tiny|auto|60"]["test_acc"] == 0.5
