"""Measure, on the person's own images, which bundled backbone's frozen features serve them best.

Which backbone wins was a rule fitted on two data sets (Lite1 on Caltech-101); on other data
the answer differs, and it is cheap to find out: embed a sample of the *training* images with
each installed ImageNet backbone (EfficientNet-Lite0, Lite1, Lite2), fit a linear head on k-1
folds and score the held-out fold. The validation split is never looked at, so the accuracy a
run reports stays honest. The time goes against the run's budget; a backbone whose probe would
not fit the share allowed is skipped and the table says so. Same seed, same sample, same answer.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from modelkit.evaluation.folds import out_of_fold

MAX_IMAGES = 1000  # training images the probe embeds at most: a sample, not a pass
MIN_IMAGES = 120
SAMPLE_STEP = 64  # the sample's size is a multiple of this (or MIN_IMAGES, or MAX_IMAGES)
# inference runs about this many times faster than a training step (registry.cpu_rate_224)
INFERENCE_SPEEDUP = 3.0
MAX_FOLDS = 4
BUDGET_SHARE = 0.2  # the probe may spend this share of a time budget, at most
HEAD_STEPS = 150  # full-batch steps of the linear head on standardised features
HEAD_WEIGHT_DECAY = 1e-3
# within this much held-out accuracy, the faster backbone wins: the run gets more epochs
TIE = 0.01


@dataclass
class Candidate:
    arch: str
    image_size: int
    heldout_accuracy: float | None = None  # None: not measured (see ``skipped``)
    seconds: float = 0.0  # all of it: loading the weights, decoding, embedding, the heads
    skipped: str = ""
    seconds_per_image: float = 0.0  # decoding and embedding one image: what a cached pass costs


@dataclass
class ProbeReport:
    """What was measured, on how many images, and which backbone won and why."""

    candidates: list[Candidate]
    images: int
    folds: int
    winner: str
    why: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    race: dict[str, Any] | None = None  # auto's race after the probe (recipes.race), when run

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "candidates": [asdict(c) for c in self.candidates]}

    def best_accuracy(self) -> float:
        """The best held-out accuracy measured (0.0 when none was)."""
        scores = [c.heldout_accuracy for c in self.candidates if c.heldout_accuracy is not None]
        return max(scores, default=0.0)

    def table(self) -> list[str]:
        """The candidates as aligned text lines, for the run log and the terminal."""
        lines = [f"{'backbone':<20} {'size':>4} {'held-out acc':>12} {'seconds':>7}"]
        for c in self.candidates:
            acc = f"{c.heldout_accuracy:.3f}" if c.heldout_accuracy is not None else c.skipped
            lines.append(f"{c.arch:<20} {c.image_size:>4} {acc:>12} {c.seconds:>7.1f}")
        return lines


def installed_backbones() -> list[tuple[str, int]]:
    """(arch, image size) of each bundled ImageNet backbone installed here, fastest first."""
    from modelkit.models import efficientnet_lite as lite
    from modelkit.models.registry import ARCHITECTURES

    names = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    return [(n, ARCHITECTURES[n].image_size) for n in names if lite.installed(n)]


def sample_size(backbones: list[tuple[str, int]], time_budget: float, gpu: bool) -> int:
    """Images the probe can embed with every backbone inside its share of the budget."""
    if not time_budget:
        return MAX_IMAGES
    from modelkit.models.registry import cpu_rate_224

    speed = INFERENCE_SPEEDUP * (10.0 if gpu else 1.0)
    per_image = sum(1 / (speed * cpu_rate_224(a) * (224 / s) ** 2) for a, s in backbones)
    fit = BUDGET_SHARE * time_budget / max(per_image, 1e-9)
    # in steps: the same budget gives the same sample whatever the command's start took (it is
    # spent from the budget), so the same seed makes the same choices (476 and 463 images in two
    # runs of one 2-minute cell picked different backbones, issue #26)
    return int(min(MAX_IMAGES, max(MIN_IMAGES, fit // SAMPLE_STEP * SAMPLE_STEP)))


def probe_sample(labels: np.ndarray, seed: int, images: int = MAX_IMAGES) -> np.ndarray:
    """Indices of about ``images`` training images, as many of each class as that allows, the
    same for the same seed; classes with one image are left out (nothing to hold out)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    eligible = sorted((int(n), int(c)) for c, n in zip(classes, counts) if n >= 2)
    picked, left = [], images
    for i, (count, cls) in enumerate(eligible):  # smallest first: what they leave, others use
        take = max(2, min(count, left // (len(eligible) - i)))
        picked.append(rng.choice(np.flatnonzero(labels == cls), take, replace=False))
        left -= take
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, int)


def heldout_accuracy(features: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, int]:
    """(accuracy of a linear head on the held-out folds, folds): every image is scored once by
    a head that never saw it."""
    folds = int(min(MAX_FOLDS, np.bincount(labels).astype(float)[np.unique(labels)].min()))
    folds = max(folds, 2)
    n_classes = int(labels.max()) + 1

    def fit(x: np.ndarray, y: np.ndarray):
        return np.arange(n_classes), fit_linear_head(x, y, n_classes, seed)

    scores = out_of_fold(features, labels, n_classes, folds, fit, seed)
    return float((scores.argmax(1) == labels).mean()), folds


def fit_linear_head(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int):
    """A softmax regression on standardised features, fitted full-batch: seconds, not minutes,
    for a thousand images and a hundred classes. Returns a function giving the logits."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy((x - mean) / std).float(), torch.from_numpy(y).long()
    layer = torch.nn.Linear(x.shape[1], n_classes)
    torch.nn.init.normal_(layer.weight, std=0.01, generator=gen)
    torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.01, weight_decay=HEAD_WEIGHT_DECAY)
    for _ in range(HEAD_STEPS):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(layer(xt), yt).backward()
        opt.step()

    def predict(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return layer(torch.from_numpy((z - mean) / std).float()).numpy()

    return predict


def embed(
    paths: list[str], arch: str, size: int, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray, float]:
    """(features of the images that decode, which rows decoded, seconds per image of decoding
    and embedding: loading the weights is left out, a run pays for it once) with ``arch``'s
    ImageNet weights."""
    from modelkit.cleaning.features import embed_with_model
    from modelkit.models import registry

    model = registry.build_model(arch, 2)
    registry.load_starting_weights(model, arch, "imagenet")
    started = time.perf_counter()
    feats, valid = embed_with_model(model, arch, size, paths, device)
    per_image = (time.perf_counter() - started) / max(len(paths), 1)
    return feats, valid, per_image


def probe_backbones(
    paths: list[str],
    labels: list[int] | np.ndarray,
    time_budget: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
    backbones: list[tuple[str, int]] | None = None,
) -> ProbeReport:
    """Score each backbone's frozen features on held-out folds of a sample of training images."""
    started = time.perf_counter()
    labels = np.asarray(labels)
    backbones = backbones if backbones is not None else installed_backbones()
    gpu = device != "cpu" and torch.cuda.is_available()
    sample = probe_sample(labels, seed, sample_size(backbones, time_budget, gpu))
    chosen = [paths[i] for i in sample]
    allowance = BUDGET_SHARE * time_budget if time_budget else float("inf")
    candidates: list[Candidate] = []
    folds, notes = 0, []
    for arch, size in backbones:
        spent = time.perf_counter() - started
        if candidates and _expected(candidates, size) + spent > allowance:
            candidates.append(Candidate(arch, size, skipped="over budget"))
            continue
        t0 = time.perf_counter()
        feats, valid, per_image = embed(chosen, arch, size, device)
        y = labels[sample][valid]
        keep = np.isin(y, np.flatnonzero(np.bincount(y) >= 2))
        if keep.sum() < 4 or len(np.unique(y[keep])) < 2:
            candidates.append(Candidate(arch, size, skipped="too few images"))
            continue
        _, y_dense = np.unique(y[keep], return_inverse=True)
        acc, folds = heldout_accuracy(feats[keep], y_dense, seed)
        candidates.append(Candidate(arch, size, acc, time.perf_counter() - t0, "", per_image))
        if (~valid).any():
            notes.append(f"{int((~valid).sum())} sampled images did not decode (skipped)")
    winner, why = _winner(candidates)
    return ProbeReport(
        candidates, len(sample), folds, winner, why, time.perf_counter() - started, notes[:1]
    )


def _expected(done: list[Candidate], size: int) -> float:
    """Seconds the next probe should take: the last measured one's, scaled by pixels."""
    timed = [c for c in done if c.seconds]
    if not timed:
        return 0.0
    last = timed[-1]
    return last.seconds * (size / last.image_size) ** 2 * 1.6  # the larger nets are deeper too


def _winner(candidates: list[Candidate]) -> tuple[str, str]:
    measured = [c for c in candidates if c.heldout_accuracy is not None]
    if not measured:
        return "", "no backbone could be measured"
    best = max(measured, key=lambda c: c.heldout_accuracy or 0.0)
    # the fastest backbone within TIE of the best: more epochs fit the same budget
    fastest = next(c for c in measured if (c.heldout_accuracy or 0) >= best.heldout_accuracy - TIE)
    if fastest is best:
        others = [c for c in measured if c is not best]
        margin = (
            f", {best.heldout_accuracy - max(c.heldout_accuracy or 0 for c in others):+.3f} over "
            "the next"
            if others
            else ""
        )
        return (
            best.arch,
            f"best held-out accuracy of its frozen features ({best.heldout_accuracy:.3f}{margin})",
        )
    return fastest.arch, (
        f"within {TIE:.0%} of {best.arch} ({fastest.heldout_accuracy:.3f} against "
        f"{best.heldout_accuracy:.3f}) and faster, so more epochs fit the budget"
    )
