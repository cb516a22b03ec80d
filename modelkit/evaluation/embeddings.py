"""Penultimate-layer features of a run's images: export, 2-D projections, and representational
similarity analysis (RSA) against a similarity or coordinate matrix a person supplies.

Features are the model's input to its head (``features.headless``), computed with the evaluation
preprocessing of the run's checkpoint.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelkit.csvcells import safe_cell
from modelkit.evaluation.evaluate import EvaluationError, load_split
from modelkit.training.features import headless


@dataclass
class Embeddings:
    features: np.ndarray  # N x D float32
    paths: list[str]
    labels: np.ndarray  # N ints
    classes: list[str]
    split: str

    @property
    def names(self) -> list[str]:
        return [Path(p).name for p in self.paths]


def compute_embeddings(
    run_dir: str | Path, split: str = "val", checkpoint: str = "best", device: str = "auto"
) -> Embeddings:
    images = load_split(run_dir, split, checkpoint, device)
    predictor = images.predictor
    if predictor.members:  # an ensemble: its members' features differ in width and meaning
        raise EvaluationError(
            f"{run_dir}: an ensemble has no single feature space; compute the features of one "
            f"of its member runs ({', '.join(predictor.members)})"
        )
    with headless(predictor.folded, predictor.arch):  # the copy predictions run on
        feats = predictor.logits(images.squares)  # the head is Identity here
    return Embeddings(
        features=feats.float().numpy().astype(np.float32),
        paths=images.paths,
        labels=np.asarray(images.labels, dtype=np.int64),
        classes=list(predictor.classes),
        split=split,
    )


def to_csv(emb: Embeddings) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    d = emb.features.shape[1] if emb.features.ndim == 2 else 0
    writer.writerow(["path", "label", "class", *[f"f{i}" for i in range(d)]])
    for path, y, row in zip(emb.paths, emb.labels, emb.features):
        name = safe_cell(emb.classes[y])
        writer.writerow([safe_cell(path), int(y), name, *(f"{v:.6g}" for v in row)])
    return buf.getvalue()


def to_records(emb: Embeddings) -> np.ndarray:
    """One structured array (path, label, class, features): np.load reads it without pickle."""
    d = emb.features.shape[1]
    width = max([len(p) for p in emb.paths] + [1])
    cwidth = max([len(c) for c in emb.classes] + [1])
    dtype = [("path", f"U{width}"), ("label", "i8"), ("class", f"U{cwidth}")]
    dtype.append(("features", "f4", (d,)))  # type: ignore[arg-type]
    out = np.empty(len(emb.paths), dtype=dtype)
    out["path"], out["label"] = emb.paths, emb.labels
    out["class"] = [emb.classes[y] for y in emb.labels]
    out["features"] = emb.features
    return out


def save_embeddings(emb: Embeddings, out: str | Path) -> Path:
    """``.csv`` (path, label, class, f0..) or ``.npy`` (a structured array, see to_records)."""
    out = Path(out)
    if out.suffix.lower() == ".npy":
        np.save(out, to_records(emb), allow_pickle=False)
    elif out.suffix.lower() == ".csv":
        out.write_text(to_csv(emb), encoding="utf-8")
    else:
        raise ValueError(f"{out}: the file name must end in .csv or .npy")
    return out


def project(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """N x 2 coordinates by PCA or t-SNE (scikit-learn); fewer than 3 points stay as they are."""
    n = len(features)
    if n < 3:
        return np.zeros((n, 2))
    if method == "pca":
        from sklearn.decomposition import PCA

        coords = PCA(n_components=min(2, features.shape[1]), random_state=seed).fit_transform(
            features
        )
        return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
    raise ValueError(f"projection: {method!r} is not 'pca' or 'tsne'")


# -- representational similarity analysis ---------------------------------------------------------
def cosine_similarity(features: np.ndarray) -> np.ndarray:
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return x @ x.T


def class_means(emb: Embeddings) -> tuple[list[str], np.ndarray]:
    rows = [(c, emb.features[emb.labels == i]) for i, c in enumerate(emb.classes)]
    rows = [(c, f.mean(0)) for c, f in rows if len(f)]
    return [c for c, _ in rows], np.stack([m for _, m in rows])


@dataclass
class Reference:
    names: list[str]
    matrix: np.ndarray
    kind: str  # similarity (N x N) | coordinates (N x D)


def read_reference(data: str | bytes) -> Reference:
    """A CSV with a name column first (image file name or class name) and numbers after it.

    A square table whose header names are the row names is a similarity matrix; anything else is
    coordinates (one row per item, D columns)."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(x.strip() for x in r)]
    if len(rows) < 2:
        raise ValueError("the CSV needs a header and at least 2 rows")
    header, body = rows[0], rows[1:]
    try:
        names = [r[0].strip() for r in body]
        matrix = np.asarray([[float(x) for x in r[1:]] for r in body], dtype=float)
    except ValueError as exc:
        raise ValueError(f"the CSV must hold numbers after the name column ({exc})") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError("rows must all have the same number of values")
    square = matrix.shape[0] == matrix.shape[1]
    kind = "similarity" if square and [h.strip() for h in header[1:]] == names else "coordinates"
    return Reference(names, matrix, kind)


def classical_mds(dissimilarity: np.ndarray, dims: int) -> np.ndarray:
    """Torgerson MDS: coordinates whose distances best match ``dissimilarity`` (N x dims)."""
    n = len(dissimilarity)
    j = np.eye(n) - np.ones((n, n)) / n
    b = -0.5 * j @ (dissimilarity**2) @ j
    vals, vecs = np.linalg.eigh(b)
    order = np.argsort(vals)[::-1][:dims]
    return vecs[:, order] * np.sqrt(np.maximum(vals[order], 0))


def _dissimilarity(sim: np.ndarray) -> np.ndarray:
    sim = (sim + sim.T) / 2
    dis = sim.max() - sim
    np.fill_diagonal(dis, 0)
    return dis


def rsa(emb: Embeddings, ref: Reference, per: str = "image") -> dict:
    """Compare the model's feature similarities with ``ref``: Spearman rank correlation of the
    upper triangles, and the Procrustes disparity between the configurations (reference
    coordinates, or MDS of the similarities, against MDS of the model's)."""
    from scipy.spatial import procrustes
    from scipy.spatial.distance import pdist, squareform
    from scipy.stats import spearmanr

    if per == "class":
        names, feats = class_means(emb)
    else:
        names, feats = emb.names, emb.features
    where = {n: i for i, n in enumerate(names)}
    matched = [i for i, n in enumerate(ref.names) if n in where]
    if len(matched) < 3:
        raise ValueError(
            f"only {len(matched)} of the CSV's {len(ref.names)} names match the model's "
            f"{'classes' if per == 'class' else 'image file names'}; need at least 3"
        )
    model_sim = cosine_similarity(feats[[where[ref.names[i]] for i in matched]])
    if ref.kind == "similarity":  # both sides: similarity -> dissimilarity -> MDS, the same way
        ref_sim = ref.matrix[np.ix_(matched, matched)]
        dims = min(2, len(matched) - 1)
        ref_coords = classical_mds(_dissimilarity(ref_sim), dims)
        model_coords = classical_mds(_dissimilarity(model_sim), dims)
    else:  # reference coordinates; the model's configuration from its feature distances
        ref_coords = ref.matrix[matched]
        ref_sim = -squareform(pdist(ref_coords))
        dims = ref_coords.shape[1]
        model_coords = classical_mds(np.sqrt(np.maximum(2 - 2 * model_sim, 0)), dims)
    upper = np.triu_indices(len(matched), 1)
    rho, p = spearmanr(model_sim[upper], ref_sim[upper])
    pad = max(0, ref_coords.shape[1] - model_coords.shape[1])
    _, _, disparity = procrustes(ref_coords, np.pad(model_coords, ((0, 0), (0, pad))))
    return {
        "items": len(matched),
        "unmatched": len(ref.names) - len(matched),
        "kind": ref.kind,
        "spearman_rho": float(rho),
        "spearman_p": float(p),
        "procrustes_disparity": float(disparity),
    }
