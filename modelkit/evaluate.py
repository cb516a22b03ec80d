"""Evaluate a run's checkpoint on one of its splits, after training or any time later."""

from __future__ import annotations

from pathlib import Path

import torch

from modelkit.cache import ImageCache
from modelkit.inference import Predictor
from modelkit.metrics import Evaluation, evaluate_logits, save_evaluation
from modelkit.runs import read_json


class EvaluationError(RuntimeError):
    """The run cannot be evaluated on that split; the message says why."""


def evaluate_run(
    run_dir: str | Path,
    split: str = "val",
    checkpoint: str = "best",
    device: str = "auto",
    save: bool = True,
) -> Evaluation:
    """Decode the split once, run the checkpoint over it and save the results with the run.

    Files that no longer decode (moved, damaged since training) are skipped, not fatal.
    """
    run_dir = Path(run_dir)
    splits = read_json(run_dir / "splits.json")
    if not isinstance(splits, dict):
        raise EvaluationError(f"{run_dir}: not a run folder (no readable splits.json)")
    if split not in splits or not splits[split]:
        have = ", ".join(s for s, v in splits.items() if v) or "none"
        raise EvaluationError(f"{run_dir}: the run has no '{split}' split (it has: {have})")
    ckpt = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not ckpt.is_file() and checkpoint == "best":
        ckpt = run_dir / "checkpoints" / "last.pt"
    predictor = Predictor(ckpt, device=device)
    paths = [p for p, _ in splits[split]]
    labels = [int(y) for _, y in splits[split]]
    cache = ImageCache(paths, predictor.resize_size)
    keep = [i for i in range(len(paths)) if cache.valid[i]]
    squares = [cache.array[i] for i in keep]
    logits = predictor.logits(squares)
    ev = evaluate_logits(
        logits,
        torch.tensor([labels[i] for i in keep], dtype=torch.long),
        predictor.classes,
        [paths[i] for i in keep],
        split,
    )
    if save:
        save_evaluation(run_dir, ev)
    return ev
