"""The 2-D map of a labelling folder: every image placed so that similar photos sit together,
so a person can label a whole cluster at once.

Which projection: measured on labelled folders used as if unlabelled (separation as 5-NN accuracy
in 2-D and trustworthiness, and seconds; benchmarks/results/label_layout_cpu2.json). See
``DEFAULT`` for the choice and its reason. t-SNE and PCA come with scikit-learn; UMAP
(``umap-learn``) is used only when asked for and installed.

Every method first reduces the features to ``PRE_DIMS`` with PCA (the usual step before t-SNE:
it keeps the neighbourhoods and makes the neighbour search several times cheaper), and the
coordinates are scaled to [0, 1] so a page or the HTML map draws them as they are. A map is kept
beside the features (``DATA/.modelkit-labelling/map-<digest>.npy``), keyed by the images and the
method, so a revisit with the same images draws at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelkit.errors import ModelkitError

METHODS = ("tsne", "pca", "umap")
# t-SNE: it kept classes apart (5-NN accuracy in 2-D, trustworthiness) as well as UMAP or
# better on three folders of four, and far better than PCA; at 1,000 images it takes seconds,
# and it needs no new dependency (UMAP pulls in numba and llvmlite and compiles for seconds on
# its first call): benchmarks/results/label_layout_cpu2.json.
DEFAULT = "tsne"
PRE_DIMS = 50
# t-SNE's iterations (250 of them early exaggeration): 500 instead of scikit-learn's 1,000 halves
# its time and kept 5-NN accuracy in 2-D and trustworthiness within half a point on four folders
# (benchmarks/results/label_layout_cpu2_openvino.json, "tsne" against "tsne_1000")
TSNE_ITERATIONS = 500


class LayoutError(ModelkitError, ValueError):
    """A projection that cannot be made as asked (unknown method, UMAP not installed)."""


def _reduce(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    dims = min(PRE_DIMS, x.shape[1], len(x))
    return PCA(n_components=dims, random_state=seed).fit_transform(x).astype(np.float32)


def project(features: np.ndarray, method: str = DEFAULT, seed: int = 0) -> np.ndarray:
    """N x 2 coordinates in [0, 1] by ``method`` (one of METHODS); fewer than 4 images are laid
    out on a line (no projection means anything for them). Runs on one BLAS/OpenMP thread: on
    a busy 2-core machine a thread pool made t-SNE of 1,000 images take 43 s instead of 6."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _project(features, method, seed)


def _project(features: np.ndarray, method: str, seed: int) -> np.ndarray:
    if method not in METHODS:
        raise LayoutError(f"map: {method!r} is not one of {', '.join(METHODS)}")
    n = len(features)
    if n < 4:
        return np.c_[np.linspace(0.1, 0.9, n) if n > 1 else np.full(n, 0.5), np.full(n, 0.5)]
    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    reduced = _reduce(x, seed)
    if method == "pca":
        coords = reduced[:, :2] if reduced.shape[1] >= 2 else np.c_[reduced, np.zeros(n)]
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        tsne = TSNE(
            2, perplexity=perplexity, init="pca", random_state=seed, max_iter=TSNE_ITERATIONS
        )
        coords = tsne.fit_transform(reduced)
    else:
        try:
            import umap
        except ImportError:
            raise LayoutError(
                "map: UMAP needs the umap-learn package (pip install umap-learn)"
            ) from None
        neighbours = int(min(15, n - 1))
        coords = umap.UMAP(n_neighbors=neighbours, random_state=seed).fit_transform(reduced)
    return _unit(np.asarray(coords, dtype=np.float64))


def _unit(coords: np.ndarray) -> np.ndarray:
    lo, hi = coords.min(0), coords.max(0)
    return (coords - lo) / np.where(hi > lo, hi - lo, 1.0)


def map_key(keys: Sequence[str], method: str, seed: int) -> str:
    """A digest naming one map: the images (their store keys, in order), method and seed."""
    h = hashlib.blake2b(f"{method}|{seed}".encode(), digest_size=12)
    for k in keys:
        h.update(k.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()


def cached_map(
    features: np.ndarray,
    keys: Sequence[str],
    cache_dir: str | os.PathLike,
    method: str = DEFAULT,
    seed: int = 0,
) -> np.ndarray:
    """``project`` once per set of images: read from ``cache_dir`` when this exact map was made
    before, else made and written there (atomically; older maps are replaced).

    The map is made and kept in the order of the sorted keys and handed back in the order
    asked: labelling reorders the rows (labelled images first) without changing the set, and a
    person must see the same map after each label, not a new one drawn again."""
    from modelkit.atomic import atomic_write_bytes

    order = np.argsort(np.asarray(keys, dtype=object), kind="stable") if len(keys) else []
    back = np.empty(len(order), dtype=np.int64)
    back[order] = np.arange(len(order))
    folder = Path(cache_dir)
    name = f"map-{map_key([keys[i] for i in order], method, seed)}.npy"
    path = folder / name
    try:
        if path.is_file() and not path.is_symlink():
            coords = np.load(path, allow_pickle=False)
            if coords.shape == (len(features), 2):
                return coords[back]
    except (OSError, ValueError):
        pass
    coords = project(np.asarray(features)[order] if len(order) else features, method, seed)
    if folder.is_dir() and not folder.is_symlink():
        import io

        buf = io.BytesIO()
        np.save(buf, coords, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
        for old in folder.glob("map-*.npy"):  # our own earlier maps
            if old.name != name:
                old.unlink(missing_ok=True)
    return coords[back]
