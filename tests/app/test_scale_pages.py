"""Pages stay quick on large folders: a rerun does not parse again what a run lists per image."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import modelkit.runs.folder as folder
import modelkit.runs.store as store


def test_evaluate_page_parses_splits_json_once_across_reruns(open_page, run_dir, monkeypatch):
    """splits.json names every image of the run (megabytes at 100k images): the Evaluate page
    reads it once per version of the file, not on every click."""
    reads: list[str] = []
    real = folder.read_json

    def counting(path, default=None):
        if Path(path).name == "splits.json" and Path(path).parent == run_dir:
            reads.append(str(path))
        return real(path, default)

    monkeypatch.setattr(folder, "read_json", counting)
    at = open_page("app_pages/evaluate.py")
    assert not at.exception
    for _ in range(3):
        at.run()
    assert not at.exception
    assert at.radio(key="evaluate_split").options == ["validation"]
    assert len(reads) == 1
    (run_dir / "splits.json").write_text((run_dir / "splits.json").read_text())  # rewritten
    at.run()
    assert len(reads) == 2


def test_runs_page_reads_a_run_again_only_when_it_changed(open_page, run_dir, monkeypatch):
    """The Runs page lists every run on each rerun (1,000 runs: about a second of parsing): an
    unchanged run is not read again, and a run whose status changes shows its new state."""
    when = time.time() - 60  # settled files: a file changed within 2 s is always read again
    for f in run_dir.iterdir():
        os.utime(f, (when, when))
    store.RUN_CACHE.clear()
    reads: list[str] = []
    real = store.read_json

    def counting(path, default=None):
        if Path(path).name == "status.json" and Path(path).parent == run_dir:
            reads.append(str(path))
        return real(path, default)

    monkeypatch.setattr(store, "read_json", counting)
    at = open_page("app_pages/runs.py")
    assert not at.exception
    first = len(reads)
    assert first >= 1
    for _ in range(3):
        at.run()
    assert not at.exception and len(reads) == first
    table = next(df.value for df in at.dataframe if "status" in df.value.columns)
    assert list(table["status"]) == ["finished"]

    status = json.loads((run_dir / "status.json").read_text())
    status.update(state="stopped")
    (run_dir / "status.json").write_text(json.dumps(status))  # e.g. a person stopped it
    at.run()
    assert not at.exception and len(reads) > first
    table = next(df.value for df in at.dataframe if "status" in df.value.columns)
    assert list(table["status"]) == ["stopped"]
