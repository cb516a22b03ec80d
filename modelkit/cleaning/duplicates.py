"""Near-duplicate images: groups of images whose embeddings point the same way.

``modelkit check`` finds byte-identical files; a resized, re-encoded or slightly cropped copy has
other bytes but almost the same features. Features are centred on the dataset's mean before the
cosine (backbone features are mostly positive, so raw cosines are all high) and pairs above the
threshold are joined into groups (union-find). A group with members in more than one split leaks
the answer from training into validation or test.
"""

from __future__ import annotations

import numpy as np

# Measured on hymenoptera's 244 training photos with Lite0 features (centred cosine): distinct
# photos reach at most 0.69; a copy at half size scores 0.74-0.93, a 90% crop 0.73-0.93. 0.8
# keeps well clear of distinct photos; lower it (--threshold) to catch more altered copies.
DEFAULT_THRESHOLD = 0.8
_CHUNK = 1024  # rows per block, so N x N similarities never sit in memory at once


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def near_duplicate_groups(
    features: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> list[list[int]]:
    """Groups (lists of rows, sorted) of two or more images with centred cosine >= threshold,
    largest group first."""
    n = len(features)
    if n < 2:
        return []
    x = features - features.mean(0, keepdims=True)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    parent = list(range(n))
    for start in range(0, n, _CHUNK):
        sims = x[start : start + _CHUNK] @ x.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows + start, cols):
            if c > r:
                a, b = _find(parent, int(r)), _find(parent, int(c))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(_find(parent, i), []).append(i)
    found = [sorted(g) for g in groups.values() if len(g) > 1]
    return sorted(found, key=lambda g: (-len(g), g[0]))


def straddles(group: list[int], splits: list[str]) -> bool:
    """Whether the group's images sit in more than one split."""
    return len({splits[i] for i in group}) > 1
