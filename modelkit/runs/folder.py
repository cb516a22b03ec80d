"""RunFolder: every path inside one run, and the questions front ends ask of a run's files.

A run folder is the only database the app has (``runs/<id>/``). Its file names are spelt here
and nowhere else, so a page, a CLI command or a benchmark asks "has it a checkpoint?" or "how
many images has each split?" instead of knowing where the answer lies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")
CHECKPOINTS = ("best", "last")


def read_json(path: Path, default: Any = None) -> Any:
    """A JSON file's contents, or ``default`` when it is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return default


def stamp(*files: Path) -> tuple[int, ...]:
    """Modification times of ``files`` (0 for a missing one): a cache key that changes when any
    of them is rewritten."""
    stamps = []
    for f in files:
        try:
            stamps.append(f.stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return tuple(stamps)


class RunFolder:
    """One run's folder: where each of its files lives, and what they say about it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- the files -------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        """The settings as asked (TrainConfig.to_dict): what a resume trains again."""
        return self.path / "config.json"

    @property
    def plan(self) -> Path:
        """What the run planned from the settings (epochs), changed by the time budget."""
        return self.path / "plan.json"

    @property
    def auto_search(self) -> Path:
        """What ``auto`` measured before choosing (backbones scored on held-out training
        images), beside the config it chose."""
        return self.path / "auto_search.json"

    @property
    def classes(self) -> Path:
        return self.path / "classes.json"

    @property
    def splits(self) -> Path:
        """Every image of every split as ``[path, label]`` pairs."""
        return self.path / "splits.json"

    @property
    def status(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics(self) -> Path:
        """One fsynced JSON line per finished epoch."""
        return self.path / "metrics.jsonl"

    @property
    def log(self) -> Path:
        return self.path / "log.txt"

    @property
    def lock(self) -> Path:
        """Held (flock) by the one process that trains the run."""
        return self.path / ".train.lock"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, which: str = "best") -> Path:
        """``best`` (the weights judged best, for predicting) or ``last`` (what a resume needs)."""
        if which not in CHECKPOINTS:
            raise ValueError(f"no checkpoint called {which!r}: one of {', '.join(CHECKPOINTS)}")
        return self.checkpoints / f"{which}.pt"

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    @property
    def evaluation(self) -> Path:
        return self.path / "evaluation"

    def evaluation_report(self, split: str) -> Path:
        return self.evaluation / f"{split}.json"

    def predictions(self, split: str) -> Path:
        """Per-image predictions of a split's evaluation (CSV)."""
        return self.evaluation / f"predictions_{split}.csv"

    @property
    def calibration(self) -> Path:
        return self.path / "calibration.json"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def report(self) -> Path:
        """The run's one-file HTML report (``modelkit report RUN``)."""
        return self.path / "report.html"

    # -- what they say ---------------------------------------------------------------------------
    def is_run(self) -> bool:
        """A run folder has its settings written first; without them it is not one (yet)."""
        return self.config.exists()

    def link_problem(self) -> str | None:
        """Why the run cannot be trusted with writes: one of its own files is a symlink, so
        appending to it or resuming would write into whatever file the link points at."""
        own = (self.config, self.classes, self.splits, self.status, self.metrics, self.log)
        for path in (*own, self.lock, self.checkpoints, self.best, self.last, self.calibration):
            if path.is_symlink():
                return f"{path.relative_to(self.path)} is a link to another file"
        return None

    def saved_checkpoint(self) -> Path | None:
        """The checkpoint to predict with: ``best``, else ``last``, else none."""
        for which in CHECKPOINTS:
            if self.checkpoint(which).is_file():
                return self.checkpoint(which)
        return None

    def has_checkpoint(self) -> bool:
        return self.saved_checkpoint() is not None

    def can_resume(self) -> bool:
        return self.last.is_file()

    def evaluated_splits(self) -> list[str]:
        return [s for s in SPLITS if self.evaluation_report(s).is_file()]

    def can_evaluate(self) -> bool:
        """A checkpoint to evaluate, or evaluations saved earlier to show."""
        return self.has_checkpoint() or bool(self.evaluated_splits())

    def read_splits(self) -> dict[str, list] | None:
        """splits.json as ``{split: [[path, label], ...]}``, or None when unreadable."""
        splits = read_json(self.splits)
        if not isinstance(splits, dict):
            return None
        return {s: v for s, v in splits.items() if isinstance(v, list)}

    def split_sizes(self) -> dict[str, int]:
        """Images per split (none when splits.json is missing or garbled)."""
        return {s: len(v) for s, v in (self.read_splits() or {}).items()}
