"""The seeded split and subsample of a suite set: which source file lands in which split.

Every recipe in the suite is judged on the same held-out images, so the draw depends only on the
manifest entry and the seed, never on the order git or the file system lists files in. Test is
drawn first, then val, then train, so asking for fewer training images (a few-shot or long-tail
variant) never changes the test images. What is left of each class, in the same seeded order,
replaces a drawn file that turns out not to decode, so the counts stay as asked.
"""

from __future__ import annotations

import random

SPLITS = ("test", "val", "train")  # the order images are drawn in


def longtail_counts(classes: list[str], largest: int, ratio: float) -> dict[str, int]:
    """Training images per class falling geometrically from ``largest`` (first class, sorted)
    to ``largest / ratio`` (last): the CIFAR-10-LT shape, imbalance ``ratio``."""
    n = len(classes)
    return {
        c: max(1, round(largest * ratio ** (-i / max(n - 1, 1))))
        for i, c in enumerate(sorted(classes))
    }


def draw_splits(
    by_class: dict[str, list[str]],
    take: dict[str, int | None],
    seed: int,
    train_counts: dict[str, int] | None = None,
) -> tuple[dict[str, dict[str, list[str]]], dict[str, list[str]]]:
    """(``split -> class -> files``, ``class -> spares``): per class, a seeded shuffle of its
    (sorted) files, then
    ``take[split]`` files for test, val and train in that order (``None``: all that remain).
    ``train_counts`` overrides the train count per class (long tail). A class with too few
    files gives what it has to test and val first and the rest to train."""
    out: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    spares: dict[str, list[str]] = {}
    for cls in sorted(by_class):
        files = sorted(by_class[cls])
        random.Random(f"{seed}:{cls}").shuffle(files)  # per class: adding a class moves nothing
        start = 0
        for split in SPLITS:
            want = take.get(split)
            if split == "train" and train_counts is not None:
                want = train_counts[cls]
            stop = len(files) if want is None else min(len(files), start + want)
            out[split][cls] = sorted(files[start:stop])
            start = stop
        spares[cls] = files[start:]
    return out, spares
