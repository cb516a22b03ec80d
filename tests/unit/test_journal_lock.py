"""Processes writing one Clean journal at once (issue #29): the app and ``modelkit clean``, or
two app servers, on the same dataset folder. Each entry's id is the last id plus one, so without
a lock across processes two would read the same last id and write it twice, and an undo of that
id would pick the wrong change."""

from __future__ import annotations

import json
import multiprocessing

from modelkit.cleaning.journal import JOURNAL_NAME, Journal

PER_PROCESS = 60


def _keep_all(root: str, folder: str, start) -> None:
    """A second writer with its own journal object and its own process (forked, so only a lock
    the operating system holds can keep the two apart)."""
    journal = Journal(root)
    paths = sorted(p for p in (journal.root / folder).iterdir())
    start.wait(30)  # both begin together, so their appends interleave
    for path in paths:
        journal.keep(path)


def test_processes_appending_at_once_never_share_an_id(make_dataset):
    data = make_dataset(num_classes=3, per_class=PER_PROCESS, size=(8, 8))
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(3)
    folders = ("red", "green", "blue")
    writers = [ctx.Process(target=_keep_all, args=(str(data), f, start)) for f in folders]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    assert [w.exitcode for w in writers] == [0, 0, 0]

    lines = (data / JOURNAL_NAME).read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == list(range(1, 3 * PER_PROCESS + 1)), "ids repeated or skipped"
    journal = Journal(data)
    kept = {e.src for e in journal.entries()}
    every = {f"{c}/{c}_{i:02d}.png" for c in folders for i in range(PER_PROCESS)}
    assert kept == every and not journal.skipped
    assert journal.reviewed() == every
