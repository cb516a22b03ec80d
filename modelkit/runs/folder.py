"""RunFolder: every path inside one run, and the questions front ends ask of a run's files.

A run folder is the only database the app has (``runs/<id>/``). Its file names are spelt here
and nowhere else, so a page, a CLI command or a benchmark asks "has it a checkpoint?" or "how
many images has each split?" instead of knowing where the answer lies.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from modelkit.paths import MAX_RUN_FILE_BYTES, UntrustedFileError, read_untrusted

SPLITS = ("train", "val", "test")


class RunFolderLinkError(UntrustedFileError):
    """A run folder from elsewhere with links in it: writing would land outside it."""


CHECKPOINTS = ("best", "last")


def read_json(path: Path, default: Any = None) -> Any:
    """A JSON file's contents, or ``default`` when it is missing, unreadable, not a regular
    file of sane size (a FIFO would hang every page that lists runs) or not JSON."""
    try:
        return json.loads(read_run_file(path).decode("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return default


def read_run_file(path: Path) -> bytes:
    """A run file's bytes, through the bounded reader: run folders come from elsewhere too."""
    return read_untrusted(path, MAX_RUN_FILE_BYTES, roots=None)


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
    def dataset(self) -> Path:
        """How many images each split has: what a run list shows without parsing splits.json
        (megabytes at 100,000 images, for every run listed)."""
        return self.path / "dataset.json"

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
        """Why the run cannot be trusted with writes: an entry anywhere in it is a symlink (a
        write under ``evaluation/`` or ``tensorboard/`` would land wherever it points), or a
        file the run appends to is a hard link (another name of a file elsewhere)."""
        for folder, dirs, files in os.walk(self.path, followlinks=False):
            for name in (*dirs, *files):
                entry = Path(folder, name)
                if entry.is_symlink():
                    return f"{entry.relative_to(self.path)} is a link to another file"
        for path in (self.log, self.metrics):
            try:
                if os.lstat(path).st_nlink > 1:
                    return f"{path.relative_to(self.path)} is a hard link to another file"
            except OSError:
                continue
        return None

    def check_writable(self) -> None:
        """Refuse, naming the entry, to write into a run whose folder has links in it."""
        if problem := self.link_problem():
            raise RunFolderLinkError(
                errno.ELOOP, f"refused to write into it: {problem}", str(self.path)
            )

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


def budget_note(run_dir: str | Path) -> str:
    """Why a budgeted run ended well before its budget, in the one sentence its recorder kept in
    status.json (``budget_note``); empty when it used its budget or had none. Read from the run
    folder, so a torchrun job (whose events never reach this process) shows it too."""
    status = read_json(RunFolder(run_dir).status, {}) if run_dir else {}
    note = status.get("budget_note") if isinstance(status, dict) else None
    return note if isinstance(note, str) else ""
