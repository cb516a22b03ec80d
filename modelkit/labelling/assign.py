"""Giving images a class: each assignment moves (or copies) the file into ``DATA/<class>/``
through the dataset's journal (``modelkit.cleaning.journal``), so every one can be undone and no
file is ever deleted.

The journal moves a file by linking the new name, then unlinking the old one, and appends its
line only after the move (a move it cannot record is moved back). A crash can therefore leave,
at worst, one file under two names and no line for it; ``open_folder`` lists such files in
``half_moved`` (counted as labelled, never offered again) and ``finish_moves`` drops the old
name. The journal itself never holds a half-written line that is read as a change: such a line
is skipped and named (``Journal.skipped``).

Each path is done on its own: a file that cannot be labelled (gone, a link, outside the folder)
is reported with the reason in ``Outcome.failed`` and the others are still labelled.

``same_label_offers`` lists the near-duplicates (``cleaning.duplicates``' centred cosine and
threshold) of images just labelled that are still unlabelled: the page offers them the same
label in one click.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from modelkit.cleaning.duplicates import DEFAULT_THRESHOLD
from modelkit.cleaning.journal import Entry, Journal, JournalError
from modelkit.labelling.folder import LabelFolder, class_problem

LABEL_ACTIONS = ("label", "skip", "copy")


@dataclass
class Outcome:
    """What an assignment did: the journal entries made, and each path it could not do."""

    done: list[Entry] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    offers: list[str] = field(default_factory=list)  # near-duplicates to offer the same class


def _labelable(folder: LabelFolder) -> set[str]:
    return set(folder.unlabelled) | set(folder.skipped) | set(folder.label_of())


def label(folder: LabelFolder, paths: Iterable[str], cls: str, copy: bool = False) -> Outcome:
    """Move (or with ``copy`` copy) each image into class folder ``cls``, made if new.
    An image already in ``cls`` is left as it is."""
    if problem := class_problem(cls):
        raise JournalError(f"{folder.root}: {problem}")
    journal = Journal(folder.root)
    known, where = _labelable(folder), folder.label_of()
    out = Outcome()
    target = folder.class_dir(cls)
    for path in paths:
        path = os.path.abspath(path)
        if path not in known:
            out.failed.append((path, "not an image of this labelling folder"))
        elif where.get(path) == cls:
            continue
        else:
            try:
                entry = journal.copy(path, target) if copy else journal.move(path, target)
                out.done.append(entry)
            except (JournalError, OSError) as exc:
                out.failed.append((path, str(exc)))
    return out


def skip(folder: LabelFolder, paths: Iterable[str]) -> Outcome:
    """Move each image into the not-sure bin (``DATA/.modelkit-not-sure/``)."""
    journal = Journal(folder.root)
    out = Outcome()
    for path in paths:
        path = os.path.abspath(path)
        if path not in folder.unlabelled:
            out.failed.append((path, "not an unlabelled image of this folder"))
            continue
        try:
            out.done.append(journal.move(path, folder.skip_dir, "skip"))
        except (JournalError, OSError) as exc:
            out.failed.append((path, str(exc)))
    return out


def label_changes(root: str | os.PathLike) -> list[Entry]:
    """The labelling changes that can still be undone, oldest first."""
    return [e for e in Journal(root).active() if e.action in LABEL_ACTIONS]


def undo(root: str | os.PathLike, entry_id: int | None = None) -> Entry | None:
    """Undo labelling change ``entry_id``, or the latest one; None when there is none. The file
    goes back where it was (a copy goes to the trash folder)."""
    changes = label_changes(root)
    if entry_id is None:
        if not changes:
            return None
        entry_id = changes[-1].id
    elif entry_id not in {e.id for e in changes}:
        raise JournalError(f"{root}: no labelling change #{entry_id} to undo")
    return Journal(root).undo(entry_id)


def finish_moves(folder: LabelFolder) -> list[str]:
    """Complete the moves a crash cut short (``folder.half_moved``): the old name of each file
    is unlinked, the file stays under its class name. Returns the names dropped."""
    done = []
    for loose, kept in folder.half_moved:
        a, b = os.stat(loose), os.stat(kept)
        if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):  # still one file: nothing is lost
            os.unlink(loose)
            done.append(loose)
    return done


def same_label_offers(
    features: np.ndarray,
    labelled_rows: Sequence[int],
    candidate_rows: Sequence[int],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[int]:
    """Candidate rows that are near-duplicates of any labelled row (centred cosine at or above
    ``threshold``, as ``cleaning.duplicates`` groups them), most similar first."""
    cand = np.asarray(candidate_rows, dtype=np.int64)
    done = np.asarray(labelled_rows, dtype=np.int64)
    if not len(cand) or not len(done) or len(features) < 2:
        return []
    x = features - features.mean(0, keepdims=True)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    best = (x[cand] @ x[done].T).max(1)
    hit = best >= threshold
    return [int(r) for r in cand[hit][np.argsort(-best[hit], kind="stable")]]
