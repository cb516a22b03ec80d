"""Evaluate a run's checkpoint on one of its splits, after training or any time later."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelkit.data.cache import ImageCache
from modelkit.errors import ModelkitError
from modelkit.evaluation.metrics import Evaluation, evaluate_logits, save_evaluation
from modelkit.runs.folder import RunFolder
from modelkit.serving.predictor import Predictor


class EvaluationError(ModelkitError, RuntimeError):
    """The run cannot be evaluated on that split; the message says why."""


@dataclass
class SplitImages:
    """A run's split decoded for its checkpoint: the images that still decode, in order."""

    predictor: Predictor
    squares: list[np.ndarray]
    labels: list[int]
    paths: list[str]


def load_split(
    run_dir: str | Path, split: str = "val", checkpoint: str = "best", device: str = "auto"
) -> SplitImages:
    """Load the checkpoint (``best`` falls back to ``last``) and decode the split once with its
    evaluation preprocessing. Files that no longer decode (moved, damaged since training) are
    skipped, not fatal."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    splits = folder.read_splits()
    if splits is None:
        raise EvaluationError(f"{run_dir}: not a run folder (no readable {folder.splits.name})")
    if not splits.get(split):
        have = ", ".join(s for s, v in splits.items() if v) or "none"
        raise EvaluationError(f"{run_dir}: the run has no '{split}' split (it has: {have})")
    ckpt = folder.checkpoint(checkpoint)
    if not ckpt.is_file() and checkpoint == "best":
        ckpt = folder.last
    predictor = Predictor(ckpt, device=device)
    paths = [p for p, _ in splits[split]]
    cache = ImageCache(paths, predictor.resize_size)
    keep = [i for i in range(len(paths)) if cache.valid[i]]
    return SplitImages(
        predictor=predictor,
        squares=[cache.array[i] for i in keep],
        labels=[int(splits[split][i][1]) for i in keep],
        paths=[paths[i] for i in keep],
    )


def evaluate_run(
    run_dir: str | Path,
    split: str = "val",
    checkpoint: str = "best",
    device: str = "auto",
    save: bool = True,
) -> Evaluation:
    """Decode the split once, run the checkpoint over it and save the results with the run.
    Probabilities (and the loss) are calibrated with the run's temperature, as the Predictor's."""
    images = load_split(run_dir, split, checkpoint, device)
    ev = evaluate_logits(
        images.predictor.logits(images.squares) / images.predictor.temperature,
        torch.tensor(images.labels, dtype=torch.long),
        images.predictor.classes,
        images.paths,
        split,
    )
    if save:
        save_evaluation(Path(run_dir), ev)
    return ev
