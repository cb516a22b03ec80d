"""Well-known datasets (CIFAR-10, CIFAR-100) turned into ordinary class folders, once.

torchvision downloads the official archive into a cache folder; the images are then exported a
single time as ``dest/{train,val}/<class>/<n>.png`` (the official test set becomes ``val``) and a
``.complete`` marker is written. From then on the export is a dataset like any other folder, and
nothing here runs again.

Offline, the download fails with DatasetDownloadError, whose message says where to put the archive
by hand; torchvision finds a correct archive in the cache and uses it without the network.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import tarfile
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from modelkit.errors import ModelkitError

COMPLETE_MARKER = ".complete"
# torchvision opens the download without a timeout; a quick probe first turns "no network" into a
# clear error in seconds instead of a page that hangs.
PROBE_TIMEOUT_S = 10.0
Progress = Callable[[int, int], None]


class DatasetDownloadError(ModelkitError, RuntimeError):
    """A built-in dataset could not be fetched; the message says how to get the files."""


@dataclass(frozen=True)
class BuiltinDataset:
    key: str  # "cifar10"
    title: str  # "CIFAR-10"
    tv_class: str  # attribute of torchvision.datasets
    archive: str  # file torchvision downloads into the cache folder
    folder: str  # what the archive extracts to, inside the cache folder
    url: str
    size_mb: int  # download size
    num_classes: int
    description: str


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "cifar10": BuiltinDataset(
        key="cifar10",
        title="CIFAR-10",
        tv_class="CIFAR10",
        archive="cifar-10-python.tar.gz",
        folder="cifar-10-batches-py",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        size_mb=163,
        num_classes=10,
        description="60,000 colour photos of 32x32 pixels in 10 classes "
        "(airplane, automobile, bird, cat, ...): 50,000 for training, 10,000 for validation.",
    ),
    "cifar100": BuiltinDataset(
        key="cifar100",
        title="CIFAR-100",
        tv_class="CIFAR100",
        archive="cifar-100-python.tar.gz",
        folder="cifar-100-python",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        size_mb=161,
        num_classes=100,
        description="60,000 colour photos of 32x32 pixels in 100 fine-grained classes "
        "(500 training and 100 validation images per class).",
    ),
}


def _spec(key: str) -> BuiltinDataset:
    try:
        return BUILTIN_DATASETS[key]
    except KeyError:
        known = ", ".join(BUILTIN_DATASETS)
        raise ValueError(f"unknown built-in dataset {key!r}; choose one of {known}") from None


def builtin_dir(data_dir: str | os.PathLike, key: str, limit_per_class: int | None = None) -> Path:
    """Where the app exports a built-in dataset: ``<data_dir>/builtin/<key>[-<n>-per-class]``."""
    _spec(key)
    suffix = f"-{limit_per_class}-per-class" if limit_per_class else ""
    return Path(data_dir) / "builtin" / f"{key}{suffix}"


def download_cache_dir(data_dir: str | os.PathLike) -> Path:
    """Where downloaded archives are kept (and where to put them by hand when offline)."""
    return Path(data_dir) / "downloads"


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_exported(dest: str | os.PathLike) -> bool:
    """Whether ``dest`` already holds a finished export."""
    return _read_marker(Path(dest)) is not None


def _offline_message(spec: BuiltinDataset, cache_dir: Path, exc: BaseException) -> str:
    return (
        f"Could not download {spec.title} ({type(exc).__name__}: {exc}). This machine may have no "
        f"internet connection. To use {spec.title} offline, download {spec.archive} "
        f"({spec.size_mb} MB) from {spec.url} on a machine that has one, put the file in "
        f"{cache_dir} and try again: it is found there and nothing is downloaded."
    )


def _reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the download host accepts a connection (always True behind a proxy)."""
    if urllib.request.getproxies():
        return True  # urllib will go through the proxy; a direct probe would say nothing
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load(spec: BuiltinDataset, cache_dir: Path, train: bool):
    """The torchvision dataset object for one split, downloading the archive if needed."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, spec.tv_class)
    try:
        return cls(root=str(cache_dir), train=train, download=True)
    except (
        OSError,  # includes urllib.error.URLError, socket timeouts, disk errors
        RuntimeError,  # torchvision: "not found or corrupted", md5 mismatch
        EOFError,
        tarfile.TarError,
        pickle.UnpicklingError,
    ) as exc:
        raise DatasetDownloadError(_offline_message(spec, cache_dir, exc)) from exc


def _pick(targets: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices to export: all, or the first ``limit`` of each class (in the official order)."""
    if limit is None:
        return np.arange(len(targets))
    keep: list[int] = []
    seen: dict[int, int] = {}
    for i, t in enumerate(targets.tolist()):
        if seen.get(t, 0) < limit:
            seen[t] = seen.get(t, 0) + 1
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def _folder_names(classes: list[str]) -> list[str]:
    """Class names as folder names (no path separators; unique)."""
    out: list[str] = []
    for name in classes:
        safe = str(name).replace("/", "_").replace("\\", "_").strip() or "class"
        while safe in out:
            safe += "_"
        out.append(safe)
    return out


def prepare_builtin_dataset(
    key: str,
    dest: str | os.PathLike,
    cache_dir: str | os.PathLike,
    limit_per_class: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download (if needed) and export a built-in dataset as class folders; returns ``dest``.

    ``dest`` receives ``train/<class>/<n>.png`` and ``val/<class>/<n>.png`` (official test set).
    ``limit_per_class`` keeps the first that many training images of each class and the same
    share of validation images (at least one), for quick experiments. ``progress(done, total)``
    is called while images are written (the download itself reports to the terminal). Calling
    again after a finished export returns at once. Raises DatasetDownloadError when offline.
    """
    spec = _spec(key)
    if limit_per_class is not None and limit_per_class < 1:
        raise ValueError(f"limit_per_class must be at least 1 (or None for all): {limit_per_class}")
    dest = Path(dest)
    cache_dir = Path(cache_dir)
    settings = {"name": key, "limit_per_class": limit_per_class}
    if _read_marker(dest) == settings:
        return dest

    cache_dir.mkdir(parents=True, exist_ok=True)
    have_files = (cache_dir / spec.archive).exists() or (cache_dir / spec.folder).is_dir()
    if not have_files and not _reachable(spec.url):
        host = urllib.parse.urlsplit(spec.url).hostname
        raise DatasetDownloadError(
            _offline_message(spec, cache_dir, ConnectionError(f"cannot reach {host}"))
        )
    train = _load(spec, cache_dir, train=True)
    test = _load(spec, cache_dir, train=False)
    names = _folder_names(list(train.classes))
    train_targets = np.asarray(train.targets)
    test_targets = np.asarray(test.targets)
    val_limit = None
    if limit_per_class is not None:
        share = len(test_targets) / max(len(train_targets), 1)
        val_limit = max(1, round(limit_per_class * share))
    jobs = [
        ("train", train.data, train_targets, _pick(train_targets, limit_per_class)),
        ("val", test.data, test_targets, _pick(test_targets, val_limit)),
    ]
    total = sum(len(idx) for *_, idx in jobs)
    step = max(1, total // 200)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    done = 0
    try:
        if progress:
            progress(0, total)
        for split, data, targets, indices in jobs:
            for name in names:
                (tmp / split / name).mkdir(parents=True)
            for i in indices.tolist():
                folder = tmp / split / names[int(targets[i])]
                Image.fromarray(np.asarray(data[i], dtype=np.uint8), "RGB").save(
                    folder / f"{i:05d}.png"
                )
                done += 1
                if progress and (done % step == 0 or done == total):
                    progress(done, total)
        (tmp / COMPLETE_MARKER).write_text(json.dumps(settings))
        if _read_marker(dest) != settings:
            old = None
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
                os.rename(dest, old)
            os.rename(tmp, dest)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
