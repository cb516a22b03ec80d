"""Pseudo-labels: training on the unlabelled images the head is sure of, and only when that
helps on images a person labelled.

After a few labels a class the head is right about most of the rest, and the images above its
calibrated bar (``suggest``'s accept bar, the one "accept all above" uses) could join training
without anyone looking at them. Whether they help is not a given (a wrong pseudo-label teaches
the error; right ones on easy images teach little), so it is measured before training, in
seconds: a head on the training share of the person's labels against the same head with the
pseudo-labels added, both scored on the validation share, on the cached features.

Honest by construction: the person's labels are split as training splits the folder
(``scan_dataset``'s seeded draw per class, with the run's default shares and seed), and the
validation and test shares are set aside from the head that picks, calibrates and is scored, so
neither the comparison nor the run's val accuracy is flattered by the pseudo-labels: they are
only ever training images.

Nothing moves: the run trains from a list of files (``modelkit.data.file_list``) written in the
folder's hidden ``.modelkit-labelling/``, and every unlabelled image stays where it is.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelkit.config.defaults import config_defaults
from modelkit.data.file_list import write_file_list
from modelkit.data.scan import scan_dataset
from modelkit.labelling.embed import StoreError
from modelkit.labelling.folder import LabelFolder
from modelkit.labelling.session import Labeller
from modelkit.labelling.suggest import (
    DEFAULT_TARGET,
    MIN_PER_CLASS,
    SET_ASIDE,
    UNLABELLED,
    head_log_probs,
    suggest,
)

LIST_NAME = "train-files.json"  # in the folder's .modelkit-labelling/
_RUN = config_defaults()
VAL_RATIO, TEST_RATIO, SEED = _RUN["val_ratio"], _RUN["test_ratio"], _RUN["seed"]


@dataclass
class Comparison:
    """What the pseudo-labels are and whether they raised val accuracy; rows index ``x``."""

    rows: np.ndarray  # the pseudo-labelled rows
    guess: np.ndarray  # their classes
    confidence: np.ndarray  # their calibrated confidence
    ready: bool = False  # whether the training share trains a head (two classes, two each)
    threshold: float = 1.0
    reached: bool = False  # whether the training share shows the target accuracy somewhere
    val_without: float | None = None
    val_with: float | None = None

    @property
    def helped(self) -> bool:
        return raised(len(self.rows), self.val_without, self.val_with)


def raised(count: int, before: float | None, after: float | None) -> bool:
    """Whether ``count`` pseudo-labels raised val accuracy: strictly, since a tie on a few val
    images is no evidence, and pseudo-labels that are not needed are a risk for nothing."""
    return count > 0 and before is not None and after is not None and after > before


def head_accuracy(
    x: np.ndarray, train_rows: np.ndarray, train_y: np.ndarray, test_rows: np.ndarray,
    test_y: np.ndarray, num_classes: int,
) -> float:  # fmt: skip
    """Accuracy on ``test_rows`` of the suggestion head trained on ``train_rows``, unweighted:
    it stands for the run that trains on the list, whose loss weights classes only when they
    are far apart in size (``training.balance``), and a head that weighted classes by their
    label counts would cancel the pull of pseudo-labels on a class short of labels."""
    rows = np.r_[train_rows, test_rows].astype(np.int64)
    given = np.r_[train_y, np.full(len(test_rows), UNLABELLED)].astype(np.int64)
    log_probs = head_log_probs(x[rows], given, num_classes, class_weight=None)
    guess = log_probs[len(train_rows) :].argmax(1)
    return float(np.mean(guess == np.asarray(test_y)))


def compare(
    x: np.ndarray,
    labels: np.ndarray,
    val_rows: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    target: float = DEFAULT_TARGET,
    seed: int = 0,
) -> Comparison:
    """The pseudo-labels and the val comparison on normalised features ``x``. ``labels``: the
    class of each row of the training share, UNLABELLED for the images to pseudo-label, and
    SET_ASIDE for every other row (validation, test, the not-sure bin), which no head sees."""
    labels = np.asarray(labels, dtype=np.int64)
    r = suggest(x, labels, num_classes, ask=0, target=target, seed=seed, normalised=True)
    empty = np.zeros(0, np.int64)
    if not r.ready:
        return Comparison(empty, empty, np.zeros(0))
    rows = r.accept_rows(labels)
    out = Comparison(rows, r.guess[rows], r.confidence[rows], True, r.threshold, r.reached)
    if len(rows) and len(val_rows):
        train = np.flatnonzero(labels >= 0)
        out.val_without = head_accuracy(x, train, labels[train], val_rows, val_y, num_classes)
        both = np.r_[train, rows]
        ys = np.r_[labels[train], out.guess]
        out.val_with = head_accuracy(x, both, ys, val_rows, val_y, num_classes)
    return out


def person_splits(
    folder: LabelFolder, val_ratio: float = VAL_RATIO, test_ratio: float = TEST_RATIO,
    seed: int = SEED,
) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:  # fmt: skip
    """(classes, split -> [(path, class index)]): the labelled images split as training splits
    the folder (the same images are in val whether a run reads the folder or the list); only
    classes with a labelled image, and only images the labeller reads."""
    labelled = folder.label_of()
    classes = [c for c in folder.classes if folder.labelled[c]]
    if not labelled:
        return classes, {}
    index = scan_dataset(folder.root, val_ratio, test_ratio, seed)
    at = {c: i for i, c in enumerate(classes)}
    splits = {
        split: [(s.path, at[labelled[s.path]]) for s in samples
                if labelled.get(s.path) == index.classes[s.label]]
        for split, samples in index.splits.items()
    }  # fmt: skip
    return classes, {s: v for s, v in splits.items() if v}


@dataclass
class PseudoLabels:
    """A labelling folder's pseudo-labels, the comparison that decides on them, and the person's
    labels as the run splits them."""

    root: str
    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]  # the person's labels only
    pseudo: list[tuple[str, int, float]] = field(default_factory=list)  # path, class, confidence
    target: float = DEFAULT_TARGET
    threshold: float = 1.0
    val_without: float | None = None
    val_with: float | None = None
    why_none: str = ""  # why there are no pseudo-labels to compare, when there are none
    seconds: float = 0.0

    @property
    def helped(self) -> bool:
        return raised(len(self.pseudo), self.val_without, self.val_with)

    @property
    def used(self) -> list[tuple[str, int, float]]:
        """The pseudo-labels training gets: all of them when they helped, else none."""
        return self.pseudo if self.helped else []

    def per_class(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for _, label, _ in self.pseudo:
            counts[self.classes[label]] += 1
        return counts

    def sentence(self) -> str:
        """The comparison in one sentence, for the person to read before training."""
        if self.why_none:
            return self.why_none
        n, val = len(self.pseudo), len(self.splits.get("val", []))
        before, after = f"{self.val_without:.3f}", f"{self.val_with:.3f}"
        if self.helped:
            return (f"pseudo-labels raised val accuracy from {before} to {after} "
                    f"({n} pseudo-labels, {val} val images labelled by you)")  # fmt: skip
        return (f"pseudo-labels did not help: val accuracy {before} without, {after} with the "
                f"{n} pseudo-labels ({val} val images labelled by you); not used")  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "classes": self.classes, "target": self.target,
            "threshold": round(self.threshold, 4), "pseudo_labels": len(self.pseudo),
            "per_class": self.per_class(), "val_accuracy_without": self.val_without,
            "val_accuracy_with": self.val_with, "helped": self.helped, "used": len(self.used),
            "person_labels": {s: len(v) for s, v in self.splits.items()},
            "sentence": self.sentence(), "seconds": round(self.seconds, 3),
        }  # fmt: skip


def pseudo_labels(
    lab: Labeller, target: float = DEFAULT_TARGET, val_ratio: float = VAL_RATIO,
    test_ratio: float = TEST_RATIO, seed: int = SEED,
) -> PseudoLabels:  # fmt: skip
    """The unlabelled images of ``lab``'s folder above the calibrated bar for ``target``, found
    by a head on the training share of the labels, and whether they raise val accuracy."""
    start = time.perf_counter()
    classes, splits = person_splits(lab.folder, val_ratio, test_ratio, seed)
    out = PseudoLabels(lab.root, classes, splits, target=target)
    table = lab.table()
    labels = np.full(len(table.paths), SET_ASIDE, dtype=np.int64)
    labels[table.rows(lab.folder.unlabelled)] = UNLABELLED
    for path, y in splits.get("train", []):
        if (row := table.row(path)) is not None:
            labels[row] = y
    val = [(table.row(p), y) for p, y in splits.get("val", []) if table.row(p) is not None]
    if not (labels == UNLABELLED).any():
        out.why_none = "no pseudo-labels: no image is left to label"
    elif not val:
        out.why_none = ("no pseudo-labels: no labelled image is held out for validation to "
                        f"check them on (label {MIN_PER_CLASS} or more a class)")  # fmt: skip
    else:
        rows = np.array([r for r, _ in val], dtype=np.int64)
        c = compare(lab.head_features(), labels, rows, np.array([y for _, y in val]),
                    max(len(classes), 1), target, seed)  # fmt: skip
        out.threshold, out.val_without, out.val_with = c.threshold, c.val_without, c.val_with
        out.pseudo = [(table.paths[r], int(g), float(p))
                      for r, g, p in zip(c.rows, c.guess, c.confidence)]  # fmt: skip
        train = int((labels >= 0).sum())
        if not c.ready:
            out.why_none = (f"no pseudo-labels: the head needs {MIN_PER_CLASS} labels in two "
                            f"classes among the {train} kept for training")  # fmt: skip
        elif not c.reached:
            out.why_none = (f"no pseudo-labels: the {train} labels kept for training cannot show "
                            f"{target:.0%} accuracy yet; label more")  # fmt: skip
        elif not out.pseudo:
            out.why_none = (f"no pseudo-labels: no unlabelled image reaches the calibrated "
                            f"confidence {c.threshold:.3f} for {target:.0%}")  # fmt: skip
    out.seconds = time.perf_counter() - start
    return out


def list_path(root: str | os.PathLike) -> Path:
    """Where the training list of the labelling folder ``root`` is written."""
    from modelkit.labelling.folder import CACHE_NAME

    return Path(os.path.abspath(root)) / CACHE_NAME / LIST_NAME


def write_training_list(result: PseudoLabels, path: str | os.PathLike | None = None) -> Path:
    """Write the list a run trains from (atomically; by default in the folder's hidden state
    folder): train = the training share of the person's labels + the pseudo-labels when they
    helped; val and test = the person's labels only. The list also records the pseudo-labels
    per class, the bar and the comparison (``pseudo``), which training does not read."""
    path = Path(path) if path is not None else list_path(result.root)
    if path.parent.is_symlink():
        raise StoreError(f"{path.parent}: a symlink; the training list is written nowhere else")
    splits = dict(result.splits)
    splits["train"] = splits.get("train", []) + [(p, y) for p, y, _ in result.used]
    return write_file_list(path, result.classes, splits, pseudo=result.to_dict())
