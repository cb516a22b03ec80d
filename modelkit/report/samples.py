"""Sample predictions for the report: the wrong ones and the right ones the model found
hardest (highest loss first, as fastai's top losses), each with the crop the model saw and its
Grad-CAM map for the predicted class, as small JPEGs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelkit.data.augment import eval_batch
from modelkit.data.imageio import ImageLoadError
from modelkit.device import autocast
from modelkit.errors import ModelkitError
from modelkit.report.images import data_uri
from modelkit.serving.gradcam import grad_cam, overlay
from modelkit.serving.predictor import Predictor

PER_KIND = 12  # wrong and correct samples each: enough to see a pattern, small for 100 classes
SAMPLE_PX = 112
BATCH = 16  # images explained in one backward pass: one pass per image cost as much as 16


@dataclass
class SampleCard:
    kind: str  # "wrong" or "correct"
    path: str
    true: str
    predicted: str
    confidence: float
    loss: float
    image: str = ""  # data URI of the crop the model saw
    cam: str = ""  # data URI of the Grad-CAM overlay
    problem: str = ""  # why there is no picture


def pick(predictions: list[dict], per_kind: int = PER_KIND) -> list[dict]:
    """Up to ``per_kind`` wrong then ``per_kind`` correct predictions, highest loss first."""
    by_loss = sorted(predictions, key=lambda p: -float(p["loss"]))
    wrong = [p for p in by_loss if not p["correct"]][:per_kind]
    right = [p for p in by_loss if p["correct"]][:per_kind]
    return wrong + right


def sample_cards(
    checkpoint: Path | None, predictions: list[dict], device: str = "cpu"
) -> tuple[list[SampleCard], str]:
    """The cards, and a line saying what could not be drawn (no checkpoint, unreadable files)."""
    chosen = pick(predictions)
    cards = [
        SampleCard(
            "correct" if p["correct"] else "wrong",
            str(p["path"]),
            str(p["true"]),
            str(p["predicted"]),
            float(p["confidence"]),
            float(p["loss"]),
        )
        for p in chosen
    ]
    if not cards:
        return cards, ""
    if checkpoint is None:
        return cards, "No checkpoint left to draw the images with."
    try:
        predictor = Predictor(checkpoint, device=device)
    except (ModelkitError, OSError, RuntimeError) as exc:
        return cards, f"Could not load {checkpoint.name} for Grad-CAM: {exc}"
    _draw(predictor, cards)
    failed = sum(bool(c.problem) for c in cards)
    return cards, f"{failed} of the images could not be drawn (each says why)." if failed else ""


def _draw(predictor: Predictor, cards: list[SampleCard]) -> None:
    """Each card's crop and its Grad-CAM for the card's predicted class, in batches (one
    image at a time cost about as much per image as a whole batch)."""
    ready: list[tuple[SampleCard, np.ndarray]] = []
    for card in cards:
        try:
            ready.append((card, predictor.preprocess(card.path)))
        except (ImageLoadError, OSError) as exc:
            card.problem = str(getattr(exc, "reason", exc))
    classes = predictor.classes
    for start in range(0, len(ready), BATCH):
        part = ready[start : start + BATCH]
        targets = [classes.index(c.predicted) if c.predicted in classes else None for c, _ in part]
        squares = torch.from_numpy(np.stack([sq for _, sq in part])).to(predictor.device)
        x = eval_batch(squares, predictor.image_size, predictor.channels_last, predictor.norm)
        fp32 = predictor.precision == "fp32"
        ctx = None if fp32 else autocast(predictor.device, predictor.precision)
        try:
            _, maps = grad_cam(predictor.model, predictor.arch, x, targets, autocast_ctx=ctx)
        except (ModelkitError, RuntimeError) as exc:
            for card, _ in part:
                card.problem = f"Grad-CAM failed: {exc}"
            continue
        for (card, square), cam in zip(part, maps, strict=True):
            view = predictor.crop(square)
            card.image = data_uri(view, SAMPLE_PX)
            card.cam = data_uri(overlay(view, cam, 0.5), SAMPLE_PX)
