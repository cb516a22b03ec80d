"""Datasets by name for the command line: ``modelkit train cifar10`` or ``--dataset digits``.

The same datasets the Dataset page offers, made the same way and in the same place
(``<data_dir>/builtin/<key>``, ``<data_dir>/samples/digits``), so the app and the command share
one copy. ``data_dir`` is ``MODELKIT_DATA_DIR``, else ``./data`` of the current folder, as for
``modelkit studio``. Offline, CIFAR fails with the app's DatasetDownloadError message (where to
put the archive by hand).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from modelkit.data.builtin import (
    BUILTIN_DATASETS,
    builtin_dir,
    download_cache_dir,
    prepare_builtin_dataset,
)
from modelkit.data.samples import default_digits_dir, make_digits_dataset
from modelkit.errors import ModelkitError

DATASET_NAMES = ("digits", *BUILTIN_DATASETS)


class UnknownDatasetError(ModelkitError, ValueError):
    """A dataset name that is not one of DATASET_NAMES."""


def default_data_dir() -> Path:
    """Where named datasets are written: ``MODELKIT_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("MODELKIT_DATA_DIR") or "data").expanduser()


def is_dataset_name(text: str) -> bool:
    return text.lower() in DATASET_NAMES


def _report(name: str):
    shown = {"last": -1}

    def progress(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth != shown["last"]:
            shown["last"] = tenth
            print(f"writing {name}: {done:,}/{total:,} images", file=sys.stderr)

    return progress


def prepare_named_dataset(
    name: str, data_dir: str | os.PathLike | None = None, per_class: int | None = None
) -> Path:
    """The class folder of dataset ``name``, made on first use (download included for CIFAR).

    ``per_class`` keeps the first that many training images of each class (quick runs)."""
    key = name.lower()
    if key not in DATASET_NAMES:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; built-in datasets are {', '.join(DATASET_NAMES)}"
        )
    if per_class is not None and per_class < 1:
        raise UnknownDatasetError(f"--per-class must be at least 1, got {per_class}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if key == "digits":
        dest = default_digits_dir(data_dir)
        if per_class:
            dest = dest.with_name(f"digits-{per_class}-per-class")
        return make_digits_dataset(dest, per_class=per_class)
    dest = builtin_dir(data_dir, key, per_class)
    cache = download_cache_dir(data_dir)
    return prepare_builtin_dataset(key, dest, cache, per_class, progress=_report(key))
