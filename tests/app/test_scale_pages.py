"""Pages stay quick on large folders: a rerun does not parse again what a run lists per image."""

from __future__ import annotations

from pathlib import Path

import modelkit.runs.store as store


def test_evaluate_page_parses_splits_json_once_across_reruns(open_page, run_dir, monkeypatch):
    """splits.json names every image of the run (megabytes at 100k images): the Evaluate page
    reads it once per version of the file, not on every click."""
    reads: list[str] = []
    real = store.read_json

    def counting(path, default=None):
        if Path(path).name == "splits.json" and Path(path).parent == run_dir:
            reads.append(str(path))
        return real(path, default)

    monkeypatch.setattr(store, "read_json", counting)
    at = open_page("pages/evaluate.py")
    assert not at.exception
    for _ in range(3):
        at.run()
    assert not at.exception
    assert at.radio(key="evaluate_split").options == ["validation"]
    assert len(reads) == 1
    (run_dir / "splits.json").write_text((run_dir / "splits.json").read_text())  # rewritten
    at.run()
    assert len(reads) == 2
