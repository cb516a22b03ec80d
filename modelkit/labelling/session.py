"""One labelling folder as a page or the command sees it: the folder, its features, the head's
suggestions, and the moves, by file path (the other modules work on rows and arrays).

A page keeps one ``Labeller`` per folder (``st.session_state`` or ``st.cache_resource``) and
calls, from the top of each rerun, ``refresh()`` (re-reads names only: cheap) and ``table()``
(features from the store; only new files are embedded; pass ``progress`` to show it). Then:

- ``suggest(ask, target)`` -> ``Suggestions``: the next images to label, each with the reason,
  the head's guess and its calibrated confidence; every unlabelled image's guess; the accept bar.
- ``assign(paths, cls, copy)`` -> ``Outcome`` plus ``offers`` (unlabelled near-duplicates of the
  images just labelled, to offer the same class); ``skip(paths)``; ``undo(entry_id=None)``.
- ``accept(suggestions)``: label every unlabelled image at or above the accept bar with its guess.
- ``like(path, k)``: "more like this"; ``coords(method)``: the 2-D map (``layout``), row-aligned
  with ``table().paths``; ``thumb(path)``: a 48 x 48 RGB array.
- ``head_features()``: what the head trains on, row-aligned with ``table().paths`` (``pseudo``
  trains its own heads on them).

Nothing here imports streamlit; every error is a ``ModelkitError`` whose message names the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from modelkit.labelling import assign as moves
from modelkit.labelling.embed import FeatureTable, Progress, embed_folder_images
from modelkit.labelling.folder import LabelFolder, open_folder
from modelkit.labelling.layout import DEFAULT, cached_map
from modelkit.labelling.suggest import (
    DEFAULT_TARGET,
    SET_ASIDE,
    Round,
    nearest,
    reduce,
    suggest,
)


@dataclass
class Suggestions:
    """A suggestion round by path. ``asks``: dicts with path, reason, guess (a class or None)
    and confidence; ``proposals``: (path, class, calibrated confidence) for every unlabelled
    image, most confident first; ``accept``: the paths at or above the bar."""

    asks: list[dict]
    proposals: list[tuple[str, str, float]] = field(default_factory=list)
    accept: list[tuple[str, str]] = field(default_factory=list)  # (path, class)
    ready: bool = False
    target: float = DEFAULT_TARGET
    threshold: float = 1.0
    reached: bool = False
    estimated_accuracy: float | None = None
    temperature: float = 1.0
    labelled: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "ready": self.ready, "labelled": self.labelled, "target": self.target,
            "threshold": round(self.threshold, 4), "reached": self.reached,
            "accept_count": len(self.accept), "estimated_accuracy": self.estimated_accuracy,
            "temperature": round(self.temperature, 4), "seconds": round(self.seconds, 3),
            "asks": self.asks,
        }  # fmt: skip


class Labeller:
    """The labelling state of folder ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, source: str = "pretrained", device: str = "auto"):
        self.source, self.device = source, device
        self.folder: LabelFolder = open_folder(root)
        self._table: FeatureTable | None = None
        self._asked: list[str] = []
        self._x: np.ndarray | None = None

    @property
    def root(self) -> str:
        return self.folder.root

    def refresh(self) -> LabelFolder:
        self.folder = open_folder(self.root)
        return self.folder

    def table(self, progress: Progress | None = None) -> FeatureTable:
        """Features of every image of the folder, embedded where the store lacks them."""
        paths = self.folder.all_images()
        if self._table is None or paths != self._asked:  # moves are store hits: no decoding
            before = self._table
            self._table = embed_folder_images(
                paths, self.folder.cache_dir, self.source, self.device, progress
            )
            self._asked, self._x = paths, self._reordered(before, self._table)
        return self._table

    def _reordered(self, before: FeatureTable | None, after: FeatureTable) -> np.ndarray | None:
        """The head's features of ``before`` in the rows of ``after`` when both hold the same
        images (a label moved a file): no new projection, which at 5,000 images took as long as
        the rest of the round or longer (reduce_seconds_once in
        benchmarks/results/label_speed_cpu2_openvino.json); None when the images changed."""
        if self._x is None or before is None or sorted(before.keys) != sorted(after.keys):
            return None
        row = {k: i for i, k in enumerate(before.keys)}
        return self._x[[row[k] for k in after.keys]]

    def _normalised(self) -> np.ndarray:
        if self._x is None:
            self._x = reduce(self.table().features)  # the head's features, once per table
        return self._x

    def labels(self) -> tuple[np.ndarray, list[str]]:
        """Per table row the class index (-1: not labelled), and the classes."""
        where = self.folder.label_of()
        classes = list(self.folder.classes)
        index = {c: i for i, c in enumerate(classes)}
        rows = [index[where[p]] if p in where else -1 for p in self.table().paths]
        return np.array(rows, dtype=np.int64), classes

    def head_features(self) -> np.ndarray:
        """The head's features (reduced and normalised), computed once per table."""
        return self._normalised()

    def suggest(self, ask: int = 20, target: float = DEFAULT_TARGET, seed: int = 0) -> Suggestions:
        table = self.table()
        labels, classes = self.labels()
        skipped = set(self.folder.skipped)
        pool = labels.copy()
        pool[[i for i, p in enumerate(table.paths) if p in skipped]] = SET_ASIDE
        r: Round = suggest(self._normalised(), pool, max(len(classes), 1), ask, target, seed=seed,
                           normalised=True)  # fmt: skip

        def name(i: int) -> str | None:
            return classes[i] if r.ready and 0 <= i < len(classes) else None

        asks = [
            {"path": table.paths[a.row], "reason": a.reason, "guess": name(a.guess),
             "confidence": round(a.confidence, 4)}
            for a in r.asks
        ]  # fmt: skip
        out = Suggestions(asks, labelled=int((labels >= 0).sum()), seconds=r.seconds)
        if r.ready:
            open_rows = np.flatnonzero(pool == -1)
            order = open_rows[np.argsort(-r.confidence[open_rows], kind="stable")]
            out.proposals = [(table.paths[i], classes[r.guess[i]], float(r.confidence[i]))
                             for i in order]  # fmt: skip
            out.accept = [(table.paths[i], classes[r.guess[i]]) for i in r.accept_rows(pool)]
            out.ready, out.target, out.threshold, out.reached = True, target, r.threshold, r.reached
            out.estimated_accuracy, out.temperature = r.estimated_accuracy, r.temperature
        return out

    def assign(self, paths: Iterable[str], cls: str, copy: bool = False) -> moves.Outcome:
        """Label ``paths`` as ``cls``; ``outcome.offers`` lists unlabelled near-duplicates."""
        paths = [os.path.abspath(p) for p in paths]
        table = self.table()  # before the move: the rows are found by the old names
        outcome = moves.label(self.folder, paths, cls, copy)
        done = table.rows([p for p in paths if p not in dict(outcome.failed)])
        others = table.rows([p for p in self.folder.unlabelled if p not in set(paths)])
        offers = moves.same_label_offers(table.features, done, others) if len(table.paths) else []
        outcome.offers = [table.paths[r] for r in offers]
        self.refresh()
        return outcome

    def skip(self, paths: Iterable[str]) -> moves.Outcome:
        outcome = moves.skip(self.folder, paths)
        self.refresh()
        return outcome

    def undo(self, entry_id: int | None = None):
        entry = moves.undo(self.root, entry_id)
        self.refresh()
        return entry

    def accept(self, suggestions: Suggestions, copy: bool = False) -> moves.Outcome:
        """Label every image at or above the accept bar with the head's guess."""
        total = moves.Outcome()
        by_class: dict[str, list[str]] = {}
        for path, cls in suggestions.accept:
            by_class.setdefault(cls, []).append(path)
        for cls, paths in by_class.items():
            part = moves.label(self.folder, paths, cls, copy)
            total.done += part.done
            total.failed += part.failed
        self.refresh()
        return total

    def like(self, path: str, k: int = 12) -> list[tuple[str, float]]:
        table = self.table()
        row = table.row(os.path.abspath(path))
        if row is None:
            return []
        rows, sims = nearest(self._normalised(), row, k, normalised=True)
        return [(table.paths[r], float(s)) for r, s in zip(rows, sims)]

    def coords(self, method: str = DEFAULT, seed: int = 0) -> np.ndarray:
        table = self.table()
        return cached_map(table.features, table.keys, self.folder.cache_dir, method, seed)

    def thumb(self, path: str) -> np.ndarray | None:
        table = self.table()
        row = table.row(os.path.abspath(path))
        return None if row is None else np.asarray(table.thumbs[row])
