"""RunStore: the on-disk record of every run, which is the only database the app has.

Each run is a folder (``RunFolder`` says what lies where: settings, splits, status, metrics,
checkpoints, evaluations). Every page can be rebuilt from the folders after a restart; a run
whose process died is reported as interrupted and resumes from its last checkpoint.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelkit.errors import ModelkitError
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.lock import is_locked
from modelkit.runs.members import ensemble_summary, is_ensemble
from modelkit.runs.metrics_log import best_row, metric_rows
from modelkit.runs.metrics_log import read_metrics as read_metrics  # where pages look for it
from modelkit.runs.validate import classes_problem, config_problem, status_problem

STATES = ("running", "finished", "stopped", "pruned", "failed", "interrupted")
# runs that ended on their own terms with weights worth evaluating, exporting and serving
ENDED_STATES = ("finished", "stopped", "pruned")
UNREADABLE = "unreadable"  # a run whose files have the wrong shape; listed, deletable, not used


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _process_start(pid: int) -> str | None:
    """Start time of a process, recorded beside its pid in status.json for a person reading it;
    whether the run trains is its lock's to say (``_live_state``)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _live_state(status: dict[str, Any], run_dir: str | Path) -> str:
    """The state a status.json says, with 'running' turned into 'interrupted' unless a process
    holds the run's lock (asked again on every call: a cached run's process may end at any time).

    Only the kernel's lock says whether a run trains: the status's pid may belong to any live
    process (init, a recycled pid, another machine's), and a run whose pid looked alive could
    never be resumed or deleted."""
    state = status.get("state", "interrupted")
    if state == "running" and not is_locked(run_dir):
        state = "interrupted"
    return state if state in STATES else "interrupted"


def run_state(run_dir: str | Path) -> dict[str, Any]:
    """status.json with 'running' turned into 'interrupted' when its process is gone."""
    status = read_json(RunFolder(run_dir).status, {}) or {}
    if not isinstance(status, dict):
        status = {}
    return {**status, "state": _live_state(status, run_dir)}


@dataclass
class RunInfo:
    id: str
    path: Path
    state: str
    arch: str
    created: str
    updated: str
    duration_s: float | None
    epochs_done: int
    epochs: int
    best: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    error: str = ""
    problem: str = ""  # why the run is unreadable (state "unreadable"), naming the file
    images: int = 0  # in the run's splits, from dataset.json (0: a run made before it)

    @property
    def best_val_acc(self) -> float | None:
        return self.best.get("val_acc")

    @property
    def folder(self) -> RunFolder:
        """Where the run's files are, and what they say (checkpoints, splits, evaluations)."""
        return RunFolder(self.path)

    @property
    def dataset_path(self) -> str:
        """The folder the run trained on, as its config names it ("" when it names none)."""
        value = self.config.get("data_dir")
        return value if isinstance(value, str) else ""

    @property
    def dataset_name(self) -> str:
        return Path(self.dataset_path).name or "unknown data set"

    @property
    def dataset_images(self) -> int:
        """Images the run split into train/val/test (0 when unknown)."""
        return self.images

    @property
    def test_time_augmentation(self) -> str:
        """The TTA its evaluations use: it labels their accuracy apart from training's."""
        return str(self.config.get("tta", "none"))

    def dataset_label(self) -> str:
        """The run's data set where runs are picked: runs of two data sets must differ."""
        images = self.dataset_images
        return f"{self.dataset_name} · {images:,} images" if images else self.dataset_name

    @property
    def epochs_text(self) -> str:
        """'2/10' (done of asked); '-' for an ensemble run, which trains none."""
        return "-" if is_ensemble(self.config) else f"{self.epochs_done}/{self.epochs}"

    @property
    def resumable(self) -> bool:
        return self.state in ("interrupted", "stopped", "failed") and self.folder.can_resume()

    def summary(self) -> str:
        c = self.config
        if is_ensemble(c):  # it was not trained: what it averages, not settings it lacks
            return ensemble_summary(c)
        return (
            f"{c.get('arch', '?')} {c.get('image_size', '?')}px, {c.get('optimizer', '?')} "
            f"lr={c.get('lr', '?')}, batch {c.get('batch_size', '?')}, "
            f"weights={c.get('weights', '?')}"
        )


def _int(value: Any) -> int:
    """A count from a file a person may have edited: anything but a number reads as 0."""
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def load_run(run_dir: str | Path) -> RunInfo:
    """What the pages and the CLI show of a run. Every file is untrusted: one with the wrong
    shape makes the run *unreadable*, with the reason, and it is still listed (and deletable)."""
    return _read_run(Path(run_dir))[0]


def _read_run(path: Path) -> tuple[RunInfo, dict[str, Any]]:
    """load_run, and the status.json it read (the cache asks it again whether a run that says
    'running' still is)."""
    folder = RunFolder(path)
    config = read_json(folder.config, _GARBLED)
    classes = read_json(folder.classes, _GARBLED)
    raw_status = read_json(folder.status, _GARBLED)
    metrics, metrics_bad = metric_rows(path)
    problem = folder.link_problem() or _garbled(folder, config, classes)
    config = {} if config is _GARBLED else config  # no config.json: a run being created
    problem = (
        problem
        or config_problem(config)
        or (classes_problem(classes) if folder.classes.exists() else None)
        or (status_problem(raw_status) if raw_status is not _GARBLED else None)
        or metrics_bad
    )
    if problem:
        return _unreadable(path, problem), {}
    # a garbled or missing status.json reads as interrupted (a torn write)
    raw = raw_status if isinstance(raw_status, dict) else {}
    status = {**raw, "state": _live_state(raw, path)}
    best = status.get("best") or {}
    if not best and metrics:
        best = best_row(metrics)
    active = status.get("active_s")
    duration = float(active) if isinstance(active, (int, float)) else _span(status)
    info = RunInfo(
        id=path.name,
        path=path,
        state=status["state"],
        arch=str(config.get("arch", "?")),
        created=status.get("started_at") or "",
        updated=status.get("updated_at") or "",
        duration_s=duration,
        epochs_done=len(metrics),
        epochs=_int(config.get("epochs")),
        best=best if isinstance(best, dict) else {},
        config=config,
        classes=classes if isinstance(classes, list) else [],
        error=str(status.get("error", "")),
        images=_int(d.get("images") if isinstance(d := read_json(folder.dataset), dict) else 0),
    )
    return info, raw


_GARBLED = object()  # read_json's answer for a file that is missing or not JSON


def _garbled(folder: RunFolder, config: Any, classes: Any) -> str | None:
    for file, value in ((folder.config, config), (folder.classes, classes)):
        if value is _GARBLED and file.exists():
            return f"{file.name} cannot be read as JSON"
    return None


def _unreadable(path: Path, problem: str) -> RunInfo:
    return RunInfo(
        id=path.name,
        path=path,
        state=UNREADABLE,
        arch="?",
        created="",
        updated="",
        duration_s=None,
        epochs_done=0,
        epochs=0,
        problem=problem,
    )


def _span(status: dict[str, Any]) -> float | None:
    """Wall time from start to last update: for runs written before active time was kept."""
    started, ended = status.get("started_at"), status.get("ended_at") or status.get("updated_at")
    try:
        return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return None


# -- what a listing keeps between calls ---------------------------------------------------------
# A file changed this recently may change again within one tick of the file system's clock with
# the same size, unseen by its mtime (git's "racily clean" entries): such a run is read again.
_SETTLED_NS = 2_000_000_000


def _signature(path: Path) -> tuple[tuple, int]:
    """(inode, size, mtime) of each file load_run reads, and the newest mtime among them."""
    sig, newest = [], 0
    folder = RunFolder(path)
    for file in (folder.config, folder.classes, folder.status, folder.metrics):
        try:
            st = os.stat(file)
        except OSError:
            sig.append(None)
            continue
        sig.append((st.st_ino, st.st_size, st.st_mtime_ns))
        newest = max(newest, st.st_mtime_ns)
    return tuple(sig), newest


class _RunCache:
    """Each run's RunInfo as last read, per runs folder, kept while none of its files changed.

    A listing of 1,000 runs parses every config, classes list, status and metrics file (about
    0.3-2 s); the Runs, Evaluate, Classify and Clean pages list the runs on every rerun. With the
    cache a rerun costs four stat calls a run, and only a run whose files changed (a live run's
    metrics and status) is read again. A run whose status says 'running' is asked on every call
    whether a process still holds its lock, as load_run does.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[str, dict[str, tuple[tuple, RunInfo, dict[str, Any]]]] = {}

    def load(self, path: Path) -> RunInfo:
        sig, newest = _signature(path)
        folder, name = str(path.parent), path.name
        with self._lock:
            hit = self._folders.get(folder, {}).get(name)
        if hit is not None and hit[0] == sig:
            info, raw = hit[1], hit[2]
            if raw.get("state") == "running":
                return replace(info, state=_live_state(raw, path))
            return replace(info)  # a copy: a caller changing it does not change the cache
        info, raw = _read_run(path)
        if newest < time.time_ns() - _SETTLED_NS:
            with self._lock:
                self._folders.setdefault(folder, {})[name] = (sig, info, raw)
        return replace(info)

    def keep_only(self, root: Path, names: set[str]) -> None:
        """Forget the runs of ``root`` that are gone (deleted or renamed)."""
        with self._lock:
            runs = self._folders.get(str(root), {})
            for name in [n for n in runs if n not in names]:
                del runs[name]

    def clear(self) -> None:
        with self._lock:
            self._folders.clear()


RUN_CACHE = _RunCache()


class RunDeleteError(ModelkitError, RuntimeError):
    """A delete the store refuses: outside the runs folder, or a run that is training."""


class RunStore:
    """A folder of runs: create, list, load and delete."""

    def __init__(self, root: str | Path = "runs"):
        self.root = Path(root)

    def create(self, arch: str, name: str = "") -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:40] if name else arch
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the runs folder {self.root}: {exc.strerror}") from None
        for _ in range(100):
            path = self.root / f"{stamp}-{slug}-{secrets.token_hex(2)}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
            except OSError as exc:
                raise OSError(
                    f"cannot create a run folder in {self.root}: {exc.strerror}"
                ) from None
        raise OSError(f"could not find a free run name in {self.root}")

    def list(self) -> list[RunInfo]:
        if not self.root.is_dir():
            return []
        paths = [
            p
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and RunFolder(p).is_run()
        ]
        RUN_CACHE.keep_only(self.root, {p.name for p in paths})
        runs = [RUN_CACHE.load(p) for p in paths]
        return sorted(runs, key=lambda r: (r.created, r.id), reverse=True)

    def get(self, run: str | Path) -> RunInfo:
        path = Path(run)
        if not RunFolder(path).is_run():
            path = self.root / str(run)
        if not RunFolder(path).is_run():
            raise FileNotFoundError(f"{run}: no such run (no {RunFolder(path).config.name})")
        return RUN_CACHE.load(path)

    def delete(self, run: str | Path) -> None:
        """Remove a run's folder: only a real folder directly inside the runs folder, and never
        one that is training (its status says so, or a process holds its lock)."""
        info = self.get(run)
        folder = info.path
        root = self.root.resolve()
        if folder.is_symlink() or folder.resolve().parent != root or folder.name.startswith("."):
            raise RunDeleteError(
                f"refused to delete {folder}: it is not a run folder directly inside {root}"
            )
        if info.state == "running" or is_locked(folder):
            raise RunDeleteError(f"run {info.id} is still running; stop it first")
        shutil.rmtree(folder)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Small polling helper for tests and the CLI; returns whether the predicate came true."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
