"""Score a dataset folder: likely label errors and near-duplicate groups, in one report.

Scans the folder as training would (same split for the same seed), embeds every image once,
scores each out of sample with k-fold linear heads, ranks by confident learning and groups
near-duplicates; ``resplit`` then moves each straddling group into one split through the journal.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from modelkit.cleaning.duplicates import DEFAULT_THRESHOLD, near_duplicate_groups, straddles
from modelkit.cleaning.features import PRETRAINED, embed_images
from modelkit.cleaning.issues import confident_learning, out_of_fold_probs
from modelkit.cleaning.journal import Entry, Journal, JournalError
from modelkit.csvcells import safe_cell
from modelkit.data.scan import scan_dataset

SPLIT_ORDER = ("train", "val", "test")


@dataclass
class Issue:
    path: str
    split: str
    given: str
    suggested: str
    score: float  # probability of the given label, out of sample (lower: more suspicious)
    margin: float  # p(given) - max p(other)
    flagged: bool  # confident learning says the label is likely wrong


@dataclass
class DuplicateGroup:
    paths: list[str]
    splits: list[str]
    labels: list[str]
    straddles: bool  # members in more than one split: validation sees training images


@dataclass
class CleanReport:
    root: str
    layout: str
    classes: list[str]
    source: str  # what embedded the images
    issues: list[Issue]  # every scored image, most suspicious first
    groups: list[DuplicateGroup]
    undecodable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def flagged(self) -> list[Issue]:
        return [i for i in self.issues if i.flagged]

    def to_dict(self, top: int | None = None) -> dict:
        issues = self.flagged if top is None else self.issues[:top]
        return {
            "root": self.root,
            "layout": self.layout,
            "classes": self.classes,
            "source": self.source,
            "images": len(self.issues),
            "flagged": len(self.flagged),
            "seconds": round(self.seconds, 2),
            "issues": [asdict(i) for i in issues],
            "duplicate_groups": [asdict(g) for g in self.groups],
            "undecodable": self.undecodable,
        }

    def to_csv(self) -> str:
        """Every scored image, ranked: rank, path, split, given, suggested, score, flagged."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["rank", "path", "split", "given", "suggested", "score", "margin", "flagged"])
        for r, i in enumerate(self.issues, 1):
            cells = [i.path, i.split, i.given, i.suggested]
            w.writerow([r, *map(safe_cell, cells), f"{i.score:.4f}", f"{i.margin:.4f}", i.flagged])
        return buf.getvalue()


def find_issues(
    root: str | Path,
    source: str = PRETRAINED,
    folds: int = 5,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    val_ratio: float = 0.2,
    test_ratio: float = 0.0,
    device: str = "auto",
    progress: Callable[[str, float], None] | None = None,
) -> CleanReport:
    """Scan, embed, score and group ``root``; ``source`` is "pretrained", "pixels" or a run."""
    start = time.perf_counter()
    index = scan_dataset(root, val_ratio, test_ratio, seed)
    rows = index.all_samples()
    paths = [s.path for _, s in rows]
    feats, valid, what = embed_images(paths, source, device, progress)
    kept = [r for r, ok in zip(rows, valid) if ok]
    labels = np.array([s.label for _, s in kept], dtype=np.int64)
    splits = [split for split, _ in kept]
    if progress:
        progress("scoring", 0.92)
    probs = out_of_fold_probs(feats, labels, len(index.classes), folds, seed)
    cl = confident_learning(probs, labels)
    names = index.classes
    issues = [
        Issue(
            kept[r][1].path,
            splits[r],
            names[labels[r]],
            names[cl.suggested[r]],
            float(cl.self_confidence[r]),
            float(cl.margin[r]),
            bool(cl.flagged[r]),
        )
        for r in cl.ranking()
    ]
    groups = [
        DuplicateGroup(
            [kept[r][1].path for r in g],
            [splits[r] for r in g],
            [names[labels[r]] for r in g],
            straddles(g, splits),
        )
        for g in near_duplicate_groups(feats, threshold)
    ]
    groups.sort(key=lambda g: not g.straddles)  # the leaks first
    if progress:
        progress("done", 1.0)
    bad = [p for p, ok in zip(paths, valid) if not ok]
    return CleanReport(
        index.root, index.layout, names, what, issues, groups, bad, time.perf_counter() - start
    )


def class_folder(report: CleanReport, path: str | Path, cls: str) -> Path:
    """The folder of class ``cls`` in the same split as ``path``: where a relabel moves it."""
    root = Path(report.root)
    if cls not in report.classes:
        raise JournalError(f"{cls!r} is not a class of {root}")
    if report.layout == "splits":
        return root / Path(path).relative_to(root).parts[0] / cls
    return root / cls


def resplit(report: CleanReport, journal: Journal) -> list[Entry]:
    """Move every straddling group's images into the split most of the group is in (ties:
    train, then val), keeping each file's class folder.

    Only for train/val(/test) folders: there the split is the folders, and a move (journalled,
    undoable) is the honest fix. In a DATA/<class>/ folder the split is drawn afresh at training
    time from the seed, so there is no split to edit; such folders are refused with that reason.
    """
    if report.layout != "splits":
        raise JournalError(
            f"{report.root}: re-split needs a train/val(/test) folder layout; the split of a "
            "DATA/<class>/ folder is drawn at training time from the seed, so there is no split "
            "folder to move files between"
        )
    root = Path(report.root)
    done: list[Entry] = []
    for group in (g for g in report.groups if g.straddles):
        votes = Counter(group.splits)
        target = max(votes, key=lambda s: (votes[s], -SPLIT_ORDER.index(s)))
        folder = next(
            Path(p).relative_to(root).parts[0]
            for p, s in zip(group.paths, group.splits)
            if s == target
        )
        for path, split in zip(group.paths, group.splits):
            if split != target:
                cls = Path(path).relative_to(root).parts[1]
                done.append(journal.move_split(path, root / folder / cls))
    return done


def format_report(report: CleanReport, top: int = 20) -> str:
    """The text ``modelkit clean`` prints: the ranked issues, then the duplicate groups."""
    root = Path(report.root)

    def rel(p: str) -> str:
        return str(Path(p).relative_to(root)) if Path(p).is_relative_to(root) else p

    n = len(report.flagged)
    lines = [
        f"{report.root}: {len(report.issues)} images scored with {report.source} "
        f"in {report.seconds:.1f}s; {n} likely label errors, {len(report.groups)} near-duplicate "
        f"groups ({sum(g.straddles for g in report.groups)} across splits)",
        "",
        f"{'rank':>4}  {'score':>5}  {'given':<14} {'suggested':<14} file",
    ]
    for r, i in enumerate(report.issues[:top], 1):
        mark = "*" if i.flagged else " "
        lines.append(f"{r:>4}{mark} {i.score:5.2f}  {i.given:<14} {i.suggested:<14} {rel(i.path)}")
    if report.groups:
        lines += ["", "near-duplicate groups:"]
        for k, g in enumerate(report.groups, 1):
            tag = " (across splits)" if g.straddles else ""
            lines.append(f"  group {k}{tag}:")
            lines += [f"    [{s}] {rel(p)}" for p, s in zip(g.paths, g.splits)]
    if report.undecodable:
        lines += ["", f"{len(report.undecodable)} files do not decode (see modelkit check)"]
    lines += ["", "* flagged by confident learning"]
    return "\n".join(lines)
