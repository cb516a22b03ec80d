"""The model asks: a head on the cached features proposes a label for every unlabelled image and
picks the images whose labels would teach it most.

Everything here works on arrays (features N x D, labels N: a class index, -1 for "not labelled
yet", -2 for "set aside, never ask": the not-sure bin), so a
page, the command and the benchmark drive it alike, and tests pass small made-up features.

- The head is a logistic regression on L2-normalised backbone features, as the cleaner's k-fold
  heads (``modelkit.cleaning.issues``): it trains in well under a second on the labels a person
  gives, and is what a frozen-backbone run would learn.
- Which images to ask about: half of each batch is the unlabelled images the head is least sure
  of (lowest margin between its two best classes), skipping any near-copy of a labelled image or
  of an earlier pick, so one batch never asks about ten copies of the same photo; the other half
  explores: k-center (each pick the typical image farthest from everything labelled or picked),
  so a part of the folder with no label is found. Before the head exists (fewer than
  ``MIN_PER_CLASS`` labels in two classes) the picks are k-center over all unlabelled images among
  the typical ones (those in the denser half of the map), so the first labels cover the folder
  instead of its oddest photos.
- The head weights classes by the inverse of their label counts (``HEAD_CLASS_WEIGHT``).
- Calibrated confidence: out-of-fold log-probabilities of the labelled images (k-fold, as the
  cleaner does) fit one temperature (``evaluation.calibration.fit_temperature``), and the lowest
  calibrated confidence whose held-out answers reach the target accuracy (the Wilson-bounded
  ``threshold_for_accuracy``) is the bar for "accept all above it". The labelled images lean to
  the hard ones the head asked about, but with a few labels a class the held-out answers are few
  too: on Caltech-101 (5,000 images, 5 labels a class) the images accepted at a 95% bar were
  right 93% of the time (benchmarks/results/label_speed_cpu2.json), so the bar is an estimate,
  not a promise.
- ``nearest``: "more like this" by exact cosine search, one matrix-vector product (50,000 images
  take milliseconds: benchmarks/results/label_speed_cpu2.json), so no approximate index.

Measured label efficiency: benchmarks/results/label_efficiency_cpu2.json; the rules tried
(TypiClust cold starts, class-balanced or density-weighted asking, other heads) and their numbers:
benchmarks/results/label_efficiency_variants_cpu2.json.
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
# labelled image, an explore pick or an earlier ask. Greedy k-center among the candidates (each
# ask the one farthest from everything labelled), the rule before, asked about the oddest of the
# unsure: 0.2-1.7 points less at 10 labels a class on all four folders, mean of 8 runs
# (benchmarks/results/label_efficiency_variants_cpu2.json, "dedup:0.9" against "base")
DUPLICATE_SIM = 0.9
DEFAULT_TARGET = 0.95
HEAD_C = 10.0  # inverse regularisation: 1 (the cleaner's) left a head on 10 labels guessing
# the larger class for every image (hymenoptera); 10 and 100 both learn from the first labels
HEAD_DIMS = 128
# classes weighted by the inverse of their label counts: the asks lean to the classes the head
# confuses, and an unweighted head took that lean for a prior. Weighted: 1.4-5 points more at 2
# labels a class on all four folders, as much or more at 10 (mean of 8 runs), and no loss on
# caltech10 with classes 8x apart in size ("cw" and "imbalance_check" in
# benchmarks/results/label_efficiency_variants_cpu2.json). The pseudo-label check keeps an
# unweighted head (pseudo.head_accuracy)
HEAD_CLASS_WEIGHT = "balanced"


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


def out_of_fold_log_probs(
    x: np.ndarray, y: np.ndarray, num_classes: int, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Log-probabilities of the labelled rows ``x, y``, each from a head that never saw it."""
    sizes = np.bincount(y, minlength=num_classes)
    n_splits = int(min(folds, max(2, sizes[sizes > 0].min())))

    def fit(xs: np.ndarray, ys: np.ndarray):
        head = _fit(xs, ys)
        return head.classes_, head.predict_log_proba

    return out_of_fold(x, y, num_classes, n_splits, fit, seed, fill=-np.inf, certain=0.0)


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
    simulation that only needs the picks asks for.

    Runs on one BLAS/OpenMP thread throughout: every step is small, and on a busy 2-core machine
    a thread pool waited on descheduled threads at each operation (the temperature fit alone
    took 0.8-9 s instead of 0.1 s); a round after a new label at 5,000 images went from 2.8 s
    to 0.7 s under a heavier load (benchmarks/results/label_speed_cpu2_openvino.json)."""
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

    log_probs = head_log_probs(x, labels, num_classes)
    if not calibrate:
        margin = margins(log_probs)
        conf, guess = _calibrated(log_probs, 1.0)
        asks = _hard_and_diverse(x, labels, unknown, margin, guess, conf, ask)
        return Round(asks, True, guess, conf, seconds=time.perf_counter() - start)
    held = out_of_fold_log_probs(x[known], labels[known], num_classes, folds, seed)
    finite = np.where(np.isfinite(held), held, -1e4)
    truth = torch.from_numpy(labels[known])
    t = fit_temperature(torch.from_numpy(finite).float(), truth)
    held_conf, held_pred = _calibrated(held, t)
    ok = held_pred == labels[known]
    threshold, reached = threshold_for_accuracy(held_conf, ok, target)
    conf, guess = _calibrated(log_probs, t)
    margin = margins(np.where(np.isfinite(log_probs), log_probs / t, -np.inf))
    asks = _hard_and_diverse(x, labels, unknown, margin, guess, conf, ask)
    return Round(
        asks, True, guess, conf, t, target, threshold, reached, float(ok.mean()),
        time.perf_counter() - start,
    )  # fmt: skip


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
