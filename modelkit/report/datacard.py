"""The data card: what the run was trained and judged on, read from its own file list.

Counts come from the run's split list (what it really used, not the folder as it is today);
duplicates and leakage from hashing those files again (the dataset check's ``build_report``);
skipped images from the run's log plus the files that no longer decode. One small example per
class makes the classes recognisable at a glance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from modelkit.data.imageio import ImageLoadError
from modelkit.data.report import build_report
from modelkit.data.scan import DatasetIndex, Sample
from modelkit.report.images import file_thumbnail
from modelkit.report.runlog import LogLine, skipped_files

EXAMPLE_PX = 64
MAX_EXAMPLES = 150  # one example per class up to this many classes: the file stays small


@dataclass
class DataCard:
    root: str
    classes: list[str]
    counts: dict[str, dict[str, int]]  # {split: {class: images}} as the run listed them
    duplicates: list[dict] = field(default_factory=list)  # build_report's groups
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    examples: dict[str, str] = field(default_factory=dict)  # class -> thumbnail data URI
    layout_note: str = ""

    @property
    def leaks(self) -> list[dict]:
        """Identical files in more than one split: the evaluation saw training images."""
        return [g for g in self.duplicates if g["cross_split"]]

    @property
    def conflicts(self) -> list[dict]:
        """Identical files with different labels."""
        return [g for g in self.duplicates if g["cross_class"]]

    def rel(self, path: str) -> str:
        """A path as a person finds it: relative to the data folder when inside it."""
        try:
            rel = os.path.relpath(path, self.root) if self.root else path
        except ValueError:
            return path
        return path if rel.startswith("..") else rel


def data_card(
    classes: list[str],
    splits: dict[str, list],
    root: str,
    log: list[LogLine],
    layout_note: str = "",
) -> DataCard:
    """The card for a run's ``splits`` ({split: [[path, label], ...]}) of ``classes``."""
    samples = {
        s: [Sample(str(p), int(y)) for p, y in rows if 0 <= int(y) < len(classes)]
        for s, rows in splits.items()
    }
    counts = {s: dict.fromkeys(classes, 0) for s in samples}
    for s, rows in samples.items():
        for x in rows:
            counts[s][classes[x.label]] += 1
    card = DataCard(root, list(classes), counts, layout_note=layout_note)
    index = DatasetIndex(root=root, layout="run", classes=list(classes), splits=samples)
    checked = build_report(index, workers=min(4, os.cpu_count() or 1))
    card.duplicates = checked.duplicates
    known = [x.path for rows in samples.values() for x in rows]
    card.skipped = skipped_files(log, known)
    seen = {p for p, _ in card.skipped}
    card.skipped += [(u["path"], u["reason"]) for u in checked.unreadable if u["path"] not in seen]
    card.examples = _examples(classes, samples, {p for p, _ in card.skipped})
    return card


def _examples(classes: list[str], samples: dict[str, list[Sample]], bad: set[str]) -> dict:
    """One thumbnail per class (the first of its training images that decodes)."""
    first: dict[int, list[str]] = {}
    for split in ("train", *[s for s in samples if s != "train"]):
        for x in samples.get(split, []):
            if x.path not in bad and len(first.setdefault(x.label, [])) < 3:
                first[x.label].append(x.path)
    out: dict[str, str] = {}
    for label, name in enumerate(classes[:MAX_EXAMPLES]):
        for path in first.get(label, []):
            try:
                out[name] = file_thumbnail(path, EXAMPLE_PX)
                break
            except ImageLoadError:
                continue
    return out
