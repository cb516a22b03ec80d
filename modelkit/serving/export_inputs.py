"""What an export starts from: the run's model, and its own images as the exported graph sees them.

An export is judged on the run's validation images (the ones its accuracy was measured on) and
an int8 export is calibrated on its training images: quantisation ranges fitted to the data the
model meets, not to random pixels. Both are preprocessed exactly as the Predictor does (square
resize, centre crop, the run's mean and std), so a difference found is the export's, not ours.
Unreadable files are skipped: one bad image must not stop an export.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelkit.data.augment import eval_batch
from modelkit.data.imageio import ImageLoadError, load_image, square_resize
from modelkit.models import registry as models
from modelkit.models.checkpoint import load_checkpoint, require_modelkit
from modelkit.models.inference import model_from_payload
from modelkit.models.metadata import validate_metadata
from modelkit.runs.folder import RunFolder
from modelkit.serving.predictor import resolve_checkpoint


@dataclass
class LoadedRun:
    run_dir: Path
    checkpoint: Path
    payload: dict[str, Any]
    model: torch.nn.Module  # eval mode, CPU, fp32

    @property
    def image_size(self) -> int:
        return int(self.payload["preprocess"]["image_size"])


def load_run_model(run: str | Path) -> LoadedRun:
    """A run folder (or checkpoint file) as an eval-mode CPU model with its metadata."""
    checkpoint = resolve_checkpoint(run)
    payload = require_modelkit(load_checkpoint(checkpoint), checkpoint)
    validate_metadata(payload, checkpoint)
    model = model_from_payload(payload)  # one classifier or an ensemble of them
    folder = RunFolder(checkpoint.parent.parent)  # a checkpoint inside a run: that run
    run_dir = folder.path if folder.checkpoints == checkpoint.parent else Path(run)
    return LoadedRun(run_dir, checkpoint, payload, model)


@dataclass
class LabelledImages:
    """Images of one split with their class indices (paths as splits.json lists them)."""

    paths: list[str]
    labels: list[int]
    split: str


def split_images(run_dir: Path, split: str, limit: int | None = None) -> LabelledImages:
    """Up to ``limit`` images of ``split`` (evenly spread over the list, so every class
    counts), from the run's splits.json; none when it has no such split."""
    splits = RunFolder(run_dir).read_splits() or {}
    rows = spread([r for r in splits.get(split) or [] if _is_pair(r)], limit)
    return LabelledImages([str(p) for p, _ in rows], [int(label) for _, label in rows], split)


def spread(items: list, limit: int | None) -> list:
    """Up to ``limit`` of ``items``, evenly spaced over the list (all where ``limit`` is None)."""
    if limit is None or len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _is_pair(row: Any) -> bool:
    return (
        isinstance(row, (list, tuple))
        and len(row) == 2
        and isinstance(row[0], str)
        and isinstance(row[1], int)
    )


def preprocess(payload: dict[str, Any], paths: list[str]) -> tuple[torch.Tensor, list[int]]:
    """``paths`` as an N x 3 x S x S float32 batch, and the indices of those that could be read."""
    pre = payload["preprocess"]
    size, resize = int(pre["image_size"]), int(pre["resize_size"])
    squares, kept = [], []
    for i, path in enumerate(paths):
        try:
            squares.append(square_resize(load_image(path, min_size=resize), resize))
        except (ImageLoadError, OSError):
            continue
        kept.append(i)
    if not squares:
        return torch.empty(0, 3, size, size), []
    batch = torch.from_numpy(np.stack(squares))
    norm = models.recorded_normalisation(pre)
    return eval_batch(batch, size, channels_last=False, norm=norm).contiguous(), kept


def batches(
    payload: dict[str, Any], images: LabelledImages, batch_size: int = 32
) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """``images`` preprocessed ``batch_size`` at a time, with the labels of those read."""
    for start in range(0, len(images.paths), batch_size):
        x, kept = preprocess(payload, images.paths[start : start + batch_size])
        if kept:
            labels = np.asarray(images.labels[start : start + batch_size])[kept]
            yield x, labels


def random_inputs(payload: dict[str, Any], count: int, seed: int = 0) -> torch.Tensor:
    """Random pixels through the same preprocessing: the stand-in when a run lists no images."""
    pre = payload["preprocess"]
    resize = int(pre["resize_size"])
    g = torch.Generator().manual_seed(seed)
    batch = torch.randint(0, 256, (count, resize, resize, 3), generator=g, dtype=torch.uint8)
    norm = models.recorded_normalisation(pre)
    return eval_batch(batch, int(pre["image_size"]), channels_last=False, norm=norm).contiguous()


def calibration_inputs(loaded: LoadedRun, count: int) -> tuple[torch.Tensor, str]:
    """Up to ``count`` training images (validation ones when there are none, random pixels as
    the last resort), for fitting int8 ranges; and which of those it used."""
    for split in ("train", "val"):
        images = split_images(loaded.run_dir, split, limit=count)
        x, _kept = preprocess(loaded.payload, images.paths)
        if len(x):
            return x, f"{len(x)} {split} images"
    return random_inputs(loaded.payload, min(count, 16)), "16 random images"


def check_inputs(loaded: LoadedRun, count: int, calibration_count: int) -> torch.Tensor:
    """Up to ``count`` training images that ``calibration_inputs`` does not take: where two
    int8 variants are compared, so neither the images that fitted the ranges nor the
    validation images the export is reported on decide between them."""
    train = split_images(loaded.run_dir, "train").paths
    used = set(spread(train, calibration_count))  # as calibration_inputs draws them
    x, _kept = preprocess(loaded.payload, spread([p for p in train if p not in used], count))
    return x
