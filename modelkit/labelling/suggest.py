"""The model asks: a head on the cached features proposes a label for every unlabelled image and
picks the images whose labels would teach it most. Everything works on arrays (features N x D,
labels N: a class, -1 "not labelled yet", -2 "set aside, never ask": the not-sure bin), so a
page, the command and the benchmark drive it alike, and tests pass small made-up features.

- The head: a logistic regression on L2-normalised backbone features, as the cleaner's k-fold
  heads (``modelkit.cleaning.issues``), classes weighted by the inverse of their label counts;
  it trains in well under a second and is what a frozen-backbone run would learn, blended with
  labels spread over the folder's neighbour graph, unlabelled images too (``SPREAD_PRIOR``).
- Which images to ask about: half of each batch is the unlabelled images the head is least
  sure of (lowest margin between its two best classes) that are no near-copy of a labelled
  image or an earlier pick; the other half explores: k-center (each pick the typical image
  farthest from everything labelled or picked), so a part with no label is found. Before the
  head exists (under ``MIN_PER_CLASS`` labels in two classes) all picks are k-center among the
  typical images (the denser half of the map), not the oddest photos.
- Calibrated confidence: out-of-fold log-probabilities of the labelled images fit one
  temperature (``evaluation.calibration.fit_temperature``); the lowest calibrated confidence
  whose held-out answers reach the target accuracy (Wilson-bounded ``threshold_for_accuracy``)
  is the bar for "accept all above it". With few labels a class it is an estimate, not a
  promise: on Caltech-101 (5,000 images, 5 a class) 92% of those accepted at 95% were right.
- ``nearest``: "more like this", exact cosine search (50,000 images take milliseconds).
Label efficiency: benchmarks/results/label_efficiency_cpu2.json; the rules and heads tried:
label_efficiency_variants_cpu2.json and label_efficiency_semi_cpu2.json (its speed part) there.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from modelkit.evaluation.folds import out_of_fold

UNLABELLED, SET_ASIDE = -1, -2  # label values: still to label; never asked (the not-sure bin)
MIN_PER_CLASS = 2  # labels a class needs before the head is trained and trusted
EXPLORE_SHARE = 0.5  # half of each batch explores: see _hard_and_diverse
# lowest-margin candidates per asked image that the asks are taken from (see _least_sure)
POOL_PER_ASK = 8
# a hard ask is the lowest-margin candidate that is no near-copy (cosine above this) of a
# labelled image, an explore pick or an earlier ask; greedy k-center among the candidates asked
# about the oddest of the unsure: 0.2-1.7 points less at 10 a class on all four folders, mean of
# 8 runs (label_efficiency_variants_cpu2.json, "dedup:0.9" against "base")
DUPLICATE_SIM = 0.9
DEFAULT_TARGET = 0.95
HEAD_C = 10.0  # inverse regularisation: 1 (the cleaner's) left a head on 10 labels guessing
# the larger class for every image (hymenoptera); 10 and 100 both learn from the first labels
HEAD_DIMS = 128
# classes weighted by the inverse of their label counts: the asks lean to the classes the head
# confuses, and an unweighted head took that lean for a prior. Weighted: 1.4-5 points more at 2
# labels a class on all four folders, as much or more at 10, no loss with classes 8x apart in
# size ("cw", "imbalance_check" in label_efficiency_variants_cpu2.json). The pseudo-label check
# keeps an unweighted head (pseudo.head_accuracy)
HEAD_CLASS_WEIGHT = "balanced"
# the head learns from the unlabelled images too: the logistic head's probabilities averaged
# with labels spread on a graph of each image's nearest (Zhou et al.'s label spreading), weighing
# SPREAD_PRIOR / (SPREAD_PRIOR + labels a class); 0: off. Self-training, prototypes, smoothed
# features and fixed weights did less: benchmarks/results/label_efficiency_semi_cpu2.json
SPREAD_PRIOR, SPREAD_NEIGHBOURS, SPREAD_ALPHA = 5.0, 10, 0.9
_GRAPHS: dict = {}  # spread_graph's last few graphs


def normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32): cosine similarity is then a dot product."""
    x = np.asarray(features, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def reduce(features: np.ndarray, dims: int = HEAD_DIMS, seed: int = 0) -> np.ndarray:
    """The features the head, k-center and "more like this" use: L2-normalised, projected on
    their first ``dims`` principal components (of all images, labelled or not) and normalised
    again. A head on 128 components trains tens of times faster than on Lite0's 1,280 and
    labels as well (benchmarks/results/label_efficiency_cpu2.json is measured on them)."""
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    x = normalise(features)
    dims = min(dims, x.shape[1], len(x))
    if dims < 2 or dims == x.shape[1]:
        return x
    with threadpool_limits(1):  # see _fit
        return normalise(PCA(dims, random_state=seed).fit_transform(x))


def _fit(x: np.ndarray, y: np.ndarray, class_weight: str | None = HEAD_CLASS_WEIGHT):
    """The head on the labelled rows. One BLAS/OpenMP thread: these fits are small, and on a
    busy 2-core machine a thread pool made the same fit 20-80x slower (seconds, not 0.05 s)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    head = LogisticRegression(C=HEAD_C, max_iter=300, class_weight=class_weight)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # an unconverged fit on a few labels is still a fine head
        head.fit(x, y)
    return head


def head_log_probs(
    x: np.ndarray, labels: np.ndarray, num_classes: int,
    class_weight: str | None = HEAD_CLASS_WEIGHT,
) -> np.ndarray:  # fmt: skip
    """N x K log-probabilities from a head fitted on the labelled rows (classes it has not seen
    get a log-probability of -inf); ``class_weight=None`` for an unweighted head."""
    known = labels >= 0
    out = np.full((len(x), num_classes), -np.inf)
    head = _fit(x[known], labels[known], class_weight)
    out[:, head.classes_] = head.predict_log_proba(x)
    return out


def _neighbours(x: np.ndarray, rows: np.ndarray, among: np.ndarray, k: int, skip_self: bool):
    """(positions in ``among``, weights: cosine cubed) of each row's ``k`` nearest of ``among``."""
    import torch  # its top-k: 7x faster than numpy's argpartition at 5,000 images

    k, xa = min(k, len(among) - skip_self), torch.from_numpy(np.ascontiguousarray(x[among]))
    idx, sims = np.zeros((len(rows), max(k, 0)), np.int64), np.zeros((len(rows), max(k, 0)))
    for s in range(0, len(rows) if k > 0 else 0, 1024):
        block = torch.from_numpy(np.ascontiguousarray(x[rows[s : s + 1024]])) @ xa.T
        if skip_self:
            block[torch.arange(len(block)), torch.arange(s, s + len(block))] = -torch.inf
        top = torch.topk(block, k, dim=1)
        idx[s : s + len(block)], sims[s : s + len(block)] = top.indices, top.values
    return idx, np.maximum(sims, 0) ** 3


def spread_graph(x: np.ndarray, labels: np.ndarray):
    """The graph labels spread on: rows not set aside; a set-aside row (not-sure, or no head may
    see it) takes its nearest nodes' spread. Kept: built in 0.1 s at 5,000 images, 2 s at 20,000."""
    from scipy import sparse

    nodes, aside = np.flatnonzero(labels != SET_ASIDE), np.flatnonzero(labels == SET_ASIDE)
    key = (x.shape, hash(x.tobytes()), hash(aside.tobytes()))
    if key not in _GRAPHS:
        idx, w = _neighbours(x, nodes, nodes, SPREAD_NEIGHBOURS, True)
        a = sparse.csr_matrix((w.ravel(), (np.repeat(np.arange(len(nodes)), idx.shape[1]),
                                           idx.ravel())), (len(nodes), len(nodes)))  # fmt: skip
        a = a.maximum(a.T)
        d = sparse.diags(1 / np.sqrt(np.maximum(np.asarray(a.sum(1)).ravel(), 1e-12)))
        near = _neighbours(x, aside, nodes, SPREAD_NEIGHBOURS, False)
        for old in list(_GRAPHS)[:-3]:  # the last few: a folder's, and its pseudo-label check's
            _GRAPHS.pop(old, None)
        _GRAPHS[key] = (nodes, d @ a @ d, aside, near)
    return _GRAPHS[key]


def spread(graph, labels: np.ndarray, num_classes: int, iterations: int = 20) -> np.ndarray:
    """N x K probabilities of the labels spread on ``graph`` (``spread_graph``), each class's
    labels starting with equal mass, so a class with more labels does not flood the rest."""
    nodes, s, aside, (near, w) = graph
    given = np.flatnonzero(labels[nodes] >= 0)
    f = y = np.zeros((len(nodes), num_classes))
    y[given, labels[nodes][given]] = 1
    y /= np.maximum(y.sum(0), 1)
    for _ in range(iterations):
        f = SPREAD_ALPHA * (s @ f) + (1 - SPREAD_ALPHA) * y
    out = np.zeros((len(labels), num_classes))
    out[nodes] = np.maximum(f, 0)
    out[aside] = (w[:, :, None] * out[nodes][near]).sum(1) if len(aside) else 0
    return out / np.maximum(out.sum(1, keepdims=True), 1e-300)  # no label reached: all 0


def blend_spread(log_probs: np.ndarray, graph, labels: np.ndarray, k: int, rows=slice(None)):
    """``log_probs`` of ``rows`` averaged with the spread of ``labels`` (see ``SPREAD_PRIOR``)."""
    if graph is None:
        return log_probs
    w = SPREAD_PRIOR / (SPREAD_PRIOR + np.mean(np.unique(labels[labels >= 0], return_counts=1)[1]))
    with np.errstate(divide="ignore"):
        return np.log((1 - w) * np.exp(log_probs) + w * spread(graph, labels, k)[rows])


def pool_log_probs(x: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """N x K log-probabilities of the suggestion head: logistic and spread (``SPREAD_PRIOR``)."""
    graph = spread_graph(x, labels) if SPREAD_PRIOR else None
    return blend_spread(head_log_probs(x, labels, num_classes), graph, labels, num_classes)


def out_of_fold_log_probs(x, labels, num_classes: int, folds=5, seed=0, graph=None) -> np.ndarray:
    """Log-probabilities of the labelled rows of ``x``, each from a logistic head that never saw
    its label, blended with a spread on ``graph`` that never saw it either (when given)."""
    known = np.flatnonzero(labels >= 0)
    sizes = np.bincount(labels[known], minlength=num_classes)
    n_splits = int(min(folds, max(2, sizes[sizes > 0].min())))

    def fit(rows: np.ndarray, ys: np.ndarray):  # rows: a column of row indices
        head = _fit(x[rows[:, 0]], ys)
        masked = np.where(labels >= 0, UNLABELLED, labels)
        masked[rows[:, 0]] = ys

        def predict(held: np.ndarray) -> np.ndarray:
            out = np.full((len(held), num_classes), -np.inf)
            out[:, head.classes_] = head.predict_log_proba(x[held[:, 0]])
            return blend_spread(out, graph, masked, num_classes, held[:, 0])

        return np.arange(num_classes), predict

    return out_of_fold(known[:, None], labels[known], num_classes, n_splits, fit, seed,
                       fill=-np.inf, certain=0.0)  # fmt: skip


def margins(log_probs: np.ndarray) -> np.ndarray:
    """Best minus second-best probability per row: small means the head cannot decide."""
    p = np.exp(log_probs)
    top2 = np.sort(p, axis=1)[:, -2:] if p.shape[1] > 1 else np.c_[np.zeros(len(p)), p]
    return top2[:, 1] - top2[:, 0]


def k_center(x: np.ndarray, pool: np.ndarray, centres: np.ndarray, k: int) -> list[int]:
    """Greedy k-center: ``k`` rows of ``pool``, each the one farthest (cosine) from every centre
    and every earlier pick. Without centres the first pick is the pool's most central row."""
    pool = np.asarray(pool, dtype=np.int64)
    if not len(pool) or k <= 0:
        return []
    xp = x[pool]
    if len(centres):
        nearest_sim = np.full(len(pool), -np.inf, dtype=np.float32)
        for s in range(0, len(centres), 2048):
            sims = xp @ x[centres[s : s + 2048]].T
            nearest_sim = np.maximum(nearest_sim, sims.max(1))
    else:
        nearest_sim = -(xp @ xp.mean(0))  # the most central row is "farthest" first
    picks: list[int] = []
    for _ in range(min(k, len(pool))):
        i = int(np.argmin(nearest_sim))
        picks.append(int(pool[i]))
        nearest_sim = np.maximum(nearest_sim, xp @ xp[i])
        nearest_sim[i] = np.inf
    return picks


def typical(x: np.ndarray, rows: np.ndarray, sample: int = 1000, neighbours: int = 10, seed=0):
    """The rows in the denser half: closest on average to their nearest neighbours among a
    random sample (a full N x N search costs too much at 20,000 images)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) <= 2 * neighbours:
        return rows
    rng = np.random.default_rng(seed)
    ref = rng.choice(rows, size=min(sample, len(rows)), replace=False)
    sims = x[rows] @ x[ref].T
    k = min(neighbours + 1, sims.shape[1])
    density = np.sort(np.partition(sims, -k, axis=1)[:, -k:], axis=1)[:, :-1].mean(1)
    return rows[density >= np.median(density)]


@dataclass
class Ask:
    """One image the head would like labelled, and why."""

    row: int
    reason: str
    guess: int = -1  # the head's best class, -1 before it exists
    confidence: float = 0.0  # calibrated probability of the guess
    margin: float = 1.0


@dataclass
class Round:
    """What one suggestion round knows; rows index the features it was given."""

    asks: list[Ask]
    ready: bool  # whether the head exists (MIN_PER_CLASS labels in two classes or more)
    guess: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # N
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0))  # N, calibrated
    temperature: float = 1.0
    target: float = DEFAULT_TARGET
    threshold: float = 1.0  # calibrated confidence at which held-out labels reach the target
    reached: bool = False
    estimated_accuracy: float | None = None  # of the head, out of fold on the labels given
    seconds: float = 0.0

    def accept_rows(self, labels: np.ndarray) -> np.ndarray:
        """Unlabelled rows whose calibrated confidence is at or above the threshold (none when
        no threshold reaches the target)."""
        if not self.ready or not self.reached:
            return np.zeros(0, np.int64)
        return np.flatnonzero((labels == UNLABELLED) & (self.confidence >= self.threshold))


def suggest(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    ask: int = 20,
    target: float = DEFAULT_TARGET,
    folds: int = 5,
    seed: int = 0,
    normalised: bool = False,
    calibrate: bool = True,
) -> Round:
    """One round: the head's guess and calibrated confidence for every row, the accept bar for
    ``target`` accuracy, and the ``ask`` unlabelled rows most worth labelling next.
    ``calibrate=False`` skips the k-fold heads (temperature 1, no accept bar): what a
    simulation that only needs the picks asks for. One BLAS/OpenMP thread throughout: on a busy
    2-core machine a thread pool waited on descheduled threads at each small step (a round at
    5,000 images took 2.8 s, not 0.7 s: benchmarks/results/label_speed_cpu2_openvino.json)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _suggest(features, labels, num_classes, ask, target, folds, seed, normalised,
                        calibrate)  # fmt: skip


def _suggest(features, labels, num_classes, ask, target, folds, seed, normalised, calibrate):
    from modelkit.evaluation.calibration import fit_temperature, threshold_for_accuracy

    start = time.perf_counter()
    x = features if normalised else normalise(features)
    labels = np.asarray(labels, dtype=np.int64)
    known = np.flatnonzero(labels >= 0)
    unknown = np.flatnonzero(labels == UNLABELLED)
    sizes = np.bincount(labels[known], minlength=num_classes)
    if (sizes >= MIN_PER_CLASS).sum() < 2:
        asks = [Ask(r, "typical and far from every labelled image") for r in _cold(x, labels, ask)]
        return Round(asks, False, seconds=time.perf_counter() - start)
    import torch

    graph = spread_graph(x, labels) if SPREAD_PRIOR else None
    log_probs = blend_spread(head_log_probs(x, labels, num_classes), graph, labels, num_classes)
    t, threshold, reached, estimate = 1.0, 1.0, False, None
    if calibrate:
        held = out_of_fold_log_probs(x, labels, num_classes, folds, seed, graph)
        finite = torch.from_numpy(np.where(np.isfinite(held), held, -1e4)).float()
        t = fit_temperature(finite, torch.from_numpy(labels[known]))
        held_conf, held_pred = _calibrated(held, t)
        ok = held_pred == labels[known]
        threshold, reached = threshold_for_accuracy(held_conf, ok, target)
        estimate = float(ok.mean())
    conf, guess = _calibrated(log_probs, t)
    margin = margins(np.where(np.isfinite(log_probs), log_probs / t, -np.inf))
    asks = _hard_and_diverse(x, labels, unknown, margin, guess, conf, ask)
    return Round(asks, True, guess, conf, t, target, threshold, reached, estimate,
                 time.perf_counter() - start)  # fmt: skip


def _calibrated(log_probs: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    z = np.where(np.isfinite(log_probs), log_probs / t, -np.inf)
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    return p.max(1), p.argmax(1)


def _cold(x: np.ndarray, labels: np.ndarray, ask: int) -> list[int]:
    pool = typical(x, np.flatnonzero(labels == UNLABELLED))
    return k_center(x, pool, np.flatnonzero(labels >= 0), ask)


def _hard_and_diverse(x, labels, unknown, margin, guess, conf, ask) -> list[Ask]:
    if not len(unknown):
        return []
    known = np.flatnonzero(labels >= 0)
    explore = int(ask * EXPLORE_SHARE)
    wide = k_center(x, typical(x, unknown), known, explore) if explore else []
    rest = np.setdiff1d(unknown, wide)
    size = min(len(rest), max(POOL_PER_ASK * ask, 50))
    pool = rest[np.argsort(margin[rest], kind="stable")[:size]]
    hard = _least_sure(x, pool, np.r_[known, wide].astype(np.int64), ask - len(wide))
    why_hard = "the head is least sure here (margin {:.2f}) and nothing like it is labelled"
    why_wide = "typical of a part of the map with no label near it (the head guesses {:.2f})"

    def why(r: int) -> str:
        return why_wide.format(conf[r]) if r in wide else why_hard.format(margin[r])

    return [Ask(r, why(r), int(guess[r]), float(conf[r]), float(margin[r])) for r in hard + wide]


def _least_sure(x: np.ndarray, pool: np.ndarray, centres: np.ndarray, k: int) -> list[int]:
    """The first ``k`` rows of ``pool`` (lowest margin first) that are no near-copy (cosine
    above ``DUPLICATE_SIM``) of a centre or of an earlier pick; when the pool runs out of such
    rows, the lowest-margin rows left fill the batch."""
    if k <= 0 or not len(pool):
        return []
    xp = x[pool]
    nearest_sim = np.full(len(pool), -np.inf, dtype=np.float32)
    for s in range(0, len(centres), 2048):
        nearest_sim = np.maximum(nearest_sim, (xp @ x[centres[s : s + 2048]].T).max(1))
    picks: list[int] = []
    for i in range(len(pool)):
        if len(picks) == k:
            break
        if nearest_sim[i] > DUPLICATE_SIM:
            continue
        picks.append(i)
        nearest_sim = np.maximum(nearest_sim, xp @ xp[i])
    chosen = set(picks)
    picks += [i for i in range(len(pool)) if i not in chosen][: k - len(picks)]
    return [int(pool[i]) for i in picks]


def nearest(features: np.ndarray, row: int, k: int = 12, normalised: bool = False):
    """(rows, cosine similarities) of the ``k`` images most like row ``row``, itself excluded."""
    x = features if normalised else normalise(features)
    sims = x @ x[row]
    sims[row] = -np.inf
    k = min(k, len(x) - 1)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0)
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return top, sims[top]
