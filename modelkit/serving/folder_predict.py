"""Predictions for every image under a folder of any size: streamed, resumable and shardable.

A folder of a million photos must not be decoded into memory, must not cost the rows already
written when the process is killed, and must split across processes or machines without them
talking to each other. So: one walk (``modelkit.data.walk``) lists the paths still to do, in a
stable order, and counts them for the progress bar; at most a few batches are decoded ahead
(memory stays flat); rows go to a ``ResumableCsv`` as each batch finishes; a rerun
of the same command skips the paths its CSV already holds; and ``shard=(i, n)`` keeps the paths
whose stable hash falls in part ``i`` of ``n``, so n independent commands cover each image once.

Decoding runs in a small thread pool (Pillow releases the GIL while it decodes). On an
accelerator the pool decodes a few batches ahead while the model runs; on a CPU the model and the
decoders share the cores, so each batch is decoded by the whole pool while the model waits, then
classified: overlapped, the model's threads waited on each other behind the decoders
(benchmarks/results/folder_predict_20k_lite0_turns_cpu2.json: 0.77 of the backend against 0.66).
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelkit.data.imageio import ImageLoadError
from modelkit.data.walk import NOT_AN_IMAGE, walk_images
from modelkit.serving.csv_sink import ResumableCsv
from modelkit.serving.predictor import Prediction, Predictor

Progress = Callable[["FolderSummary"], None]


@dataclass(frozen=True, slots=True)
class Entry:
    path: str  # the CSV's key: the path as walked from what the person named
    shard_key: str  # the path relative to the folder named, the same on every machine
    problem: str = ""  # set when the entry can not be read at all (an unreadable folder)


@dataclass
class FolderSummary:
    csv: Path
    total: int = 0  # images this command (this shard) is responsible for
    already_done: int = 0  # rows an earlier run of the command wrote
    written: int = 0  # rows this run wrote
    failed: int = 0  # of those, images that could not be read (their row says why)
    not_images: int = 0  # files skipped by their extension
    seconds: float = 0.0
    recovered_torn_row: bool = False
    failures: list[str] = field(default_factory=list)  # the first few reasons, for the log

    @property
    def rate(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based i) as (i, n); a ValueError that says what was expected otherwise."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n with whole numbers, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: needs 0 <= i < n, e.g. 0/4 .. 3/4")
    return i, n


def in_shard(key: str, shard: tuple[int, int]) -> bool:
    """Stable across processes, machines and Python versions (unlike ``hash``)."""
    i, n = shard
    if n == 1:
        return True
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n == i


def walk(inputs: Sequence[str | Path], counts: dict[str, int] | None = None) -> Iterator[Entry]:
    """Image files under ``inputs`` as Entries (``modelkit.data.walk``, the one folder walk);
    a folder that cannot be listed becomes an Entry whose row says why, and files that are not
    images by name are counted under ``counts["not_images"]``."""
    problems: list[Entry] = []

    def unreadable(path: str, reason: str) -> None:
        problems.append(Entry(path, Path(path).name, reason))

    def skipped(path: str, reason: str) -> None:
        if counts is not None and reason == NOT_AN_IMAGE:
            counts["not_images"] = counts.get("not_images", 0) + 1

    for found in walk_images(inputs, on_error=unreadable, on_skip=skipped):
        yield from problems
        problems.clear()
        yield Entry(found.path, found.rel)
    yield from problems


def csv_fields(k: int) -> list[str]:
    """The columns of a predictions CSV with the top ``k`` labels."""
    ranked = [f"{what}_{i}" for i in range(1, k + 1) for what in ("label", "probability")]
    return ["path", *ranked, "unknown", "error"]


def prediction_row(p: Prediction) -> dict[str, Any]:
    """One CSV row; an unreadable image gets its reason and no labels."""
    row: dict[str, Any] = {"path": p.source, "unknown": p.unknown if not p.error else ""}
    row["error"] = p.error
    for i, (label, prob) in enumerate(zip(p.labels, p.probabilities), 1):
        row[f"label_{i}"], row[f"probability_{i}"] = label, round(prob, 6)
    return row


def predict_folder(
    predictor: Predictor,
    inputs: Sequence[str | Path],
    csv_path: str | Path,
    top_k: int = 5,
    shard: tuple[int, int] = (0, 1),
    on_progress: Progress | None = None,
    decoders: int = 2,
    overlap: bool | None = None,
) -> FolderSummary:
    """Classify every image under ``inputs`` into ``csv_path``, continuing an earlier run.

    ``overlap``: decode ahead while the model runs (True) or take turns (False); None: overlap
    on an accelerator, take turns when the model runs on the CPU's cores."""
    fields = csv_fields(min(top_k, len(predictor.classes)))
    summary = FolderSummary(Path(csv_path))
    if overlap is None:
        overlap = predictor.device.type != "cpu"
    with ResumableCsv(csv_path, fields) as sink:
        summary.recovered_torn_row = sink.recovered_torn_row
        todo = _listing(inputs, shard, sink.done, summary)
        start = time.perf_counter()

        def record(predictions: list[Prediction]) -> None:
            summary.written += len(predictions)
            for p in predictions:
                if p.error:
                    summary.failed += 1
                    if len(summary.failures) < 20:
                        summary.failures.append(p.error)
            summary.seconds = time.perf_counter() - start
            if on_progress:
                on_progress(summary)

        # the fsync of batch k (~6 ms here) runs while the model classifies batch k+1; a batch
        # is counted, and shown, only once its rows are on disk
        with ThreadPoolExecutor(1) as writer:
            pending: tuple[Future, list[Prediction]] | None = None
            batches = _classified(predictor, _drained(todo), top_k, decoders, overlap)
            for predictions in batches:
                rows = [prediction_row(p) for p in predictions]
                if pending:
                    pending[0].result()
                    record(pending[1])
                pending = writer.submit(sink.append, rows), predictions
            if pending:
                pending[0].result()
                record(pending[1])
    return summary


def _listing(
    inputs: Sequence[str | Path], shard: tuple[int, int], done: set[str], summary: FolderSummary
) -> deque[Entry | str]:
    """The images still to classify, from one walk that also counts what the progress bar needs.

    Listed up front rather than walked twice (once to count, once to work): the walk costs
    only the names, and the CSV's ``done`` set holds as many paths by the end of a run anyway
    (a plain path string per image, about 150 bytes: 150 MB for a million photos)."""
    counts: dict[str, int] = {}
    todo: deque[Entry | str] = deque()
    for entry in walk(inputs, counts):
        if in_shard(entry.shard_key, shard):
            summary.total += 1
            if entry.path in done:
                summary.already_done += 1
            else:
                todo.append(entry if entry.problem else entry.path)
    summary.not_images = counts.get("not_images", 0)
    return todo


def _drained(todo: deque[Entry | str]) -> Iterator[Entry]:
    """Hand entries out and let go of each, so the listing shrinks as the CSV grows."""
    while todo:
        item = todo.popleft()
        yield item if isinstance(item, Entry) else Entry(item, "")


def _classified(
    predictor: Predictor, entries: Iterable[Entry], top_k: int, decoders: int, overlap: bool
) -> Iterator[list[Prediction]]:
    """Batches of Predictions, in walk order."""
    if not overlap:  # as many decoders as the model has threads: their cores wait meanwhile
        yield from _in_turn(predictor, entries, top_k, max(decoders, torch.get_num_threads()))
        return
    ahead: deque[Future] = deque()
    with ThreadPoolExecutor(max(1, decoders)) as pool:
        for batch in _chunks(entries, predictor.batch_size):
            ahead.append(pool.submit(_decoded, predictor, batch))
            if len(ahead) > decoders:
                yield _answer(predictor, *ahead.popleft().result(), top_k)
        while ahead:
            yield _answer(predictor, *ahead.popleft().result(), top_k)


def _in_turn(
    predictor: Predictor, entries: Iterable[Entry], top_k: int, decoders: int
) -> Iterator[list[Prediction]]:
    """Each batch decoded in ``decoders`` parts at once, then classified: the cores take turns."""
    with ThreadPoolExecutor(decoders) as pool:
        for batch in _chunks(entries, predictor.batch_size):
            step = -(-len(batch) // decoders)
            parts = pool.map(partial(_decoded, predictor), _chunks(batch, step))
            done, decoded = [], []
            for part_entries, part_decoded in parts:
                done += part_entries
                decoded += part_decoded
            yield _answer(predictor, done, decoded, top_k)


def _decoded(predictor: Predictor, batch: list[Entry]) -> tuple[list[Entry], list]:
    decoded: list[np.ndarray | str] = []
    for entry in batch:
        if entry.problem:
            decoded.append(f"{entry.path}: {entry.problem}")
            continue
        try:
            decoded.append(predictor.preprocess(entry.path))
        except ImageLoadError as exc:
            decoded.append(f"{entry.path}: {exc.reason}")
    return batch, decoded


def _answer(
    predictor: Predictor, batch: list[Entry], decoded: list, top_k: int
) -> list[Prediction]:
    ok = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
    answers = iter(
        predictor.answers(
            predictor.logits([decoded[i] for i in ok]), [batch[i].path for i in ok], top_k
        )
        if ok
        else []
    )
    return [
        Prediction(e.path, [], [], error=d) if isinstance(d, str) else next(answers)
        for e, d in zip(batch, decoded)
    ]


def _chunks(items: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    batch: list[Entry] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
