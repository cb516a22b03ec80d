"""Which identical files to take out of a dataset, and taking them out through the Clean journal.

The dataset check finds groups of byte-identical files (``DatasetReport.duplicates``). A copy in
another split makes the validation score too good, a copy in the same class only weighs one image
twice; in both cases one copy is enough, and which one is kept does not matter to the label. A
group whose copies carry different labels is another matter: no rule here can know the right
label, so those files are offered apart, all of them, for a person to decide.

Removing goes through ``modelkit.cleaning.journal``: each file moves to the dataset's trash
folder with a journal line, so the Clean page (or ``undo_removals``) can put it back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from modelkit.cleaning.journal import Entry, Journal
from modelkit.data.report import DatasetReport
from modelkit.errors import ModelkitError

SPLIT_ORDER = ("train", "val", "test")  # the copy kept is the one the model learns from


def _keep_first(paths: list[str], splits: list[str]) -> int:
    """Index of the copy to keep: the earliest split (train first), then the first path."""

    def rank(i: int) -> tuple[int, str]:
        split = splits[i]
        order = SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)
        return order, paths[i]

    return min(range(len(paths)), key=rank)


def extra_copies(report: DatasetReport) -> list[str]:
    """Every copy but one in each group of identical files that share one label (train's copy
    is kept): removing them takes each leak across splits and each double weight away."""
    out: list[str] = []
    for group in report.duplicates:
        if group["cross_class"]:
            continue
        keep = _keep_first(group["paths"], group["splits"])
        out.extend(p for i, p in enumerate(group["paths"]) if i != keep)
    return out


def conflicting_copies(report: DatasetReport) -> list[str]:
    """Every file of each group of identical files filed under different labels."""
    return [p for group in report.duplicates if group["cross_class"] for p in group["paths"]]


@dataclass
class Removal:
    """What ``remove_files`` did: the journal entries of the files moved, and one message per
    file it could not move (the others still moved)."""

    entries: list[Entry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [e.id for e in self.entries]


def remove_files(journal: Journal, paths: Iterable[str]) -> Removal:
    """Move each file to the trash through ``journal``; a file that cannot move (gone, a
    symlink, outside the folder) is named in ``errors`` and the rest go on."""
    done = Removal()
    for path in paths:
        try:
            done.entries.append(journal.remove(path))
        except (ModelkitError, OSError) as exc:  # JournalError, a refused path
            done.errors.append(str(exc))
    return done


def undo_removals(journal: Journal, ids: Iterable[int]) -> Removal:
    """Put back the files of the changes ``ids`` that are still in force, newest first."""
    active = {e.id for e in journal.active()}
    done = Removal()
    for ident in sorted(set(ids) & active, reverse=True):
        try:
            done.entries.append(journal.undo(ident))
        except (ModelkitError, OSError) as exc:
            done.errors.append(str(exc))
    return done
