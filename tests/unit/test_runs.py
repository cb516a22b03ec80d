"""RunStore: listing, states (interrupted when the process is gone), torn metrics, delete."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import modelkit.runs.store as store_module
from modelkit.events import EpochEnd, Failed, Finished, Message, RunStarted, Stopped
from modelkit.runs.recorder import RunRecorder
from modelkit.runs.store import RunStore, load_run, read_metrics, run_state, wait_until


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fake_run(root: Path, name: str, status: dict | None, epochs_done: int = 0, **config) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    cfg = {"arch": "resnet18", "epochs": 5, "image_size": 32, "lr": 0.01, **config}
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "classes.json").write_text(json.dumps(["a", "b"]))
    if status is not None:
        (run / "status.json").write_text(json.dumps(status))
    with open(run / "metrics.jsonl", "w") as f:
        for e in range(1, epochs_done + 1):
            row = {"epoch": e, "train_loss": 1.0 / e, "val_acc": 0.5 + e / 100}
            f.write(json.dumps(row) + "\n")
    return run


def running_status(pid: int, **extra) -> dict:
    return {
        "state": "running",
        "pid": pid,
        "host": socket.gethostname(),
        "started_at": "2026-01-01T10:00:00+00:00",
        "updated_at": "2026-01-01T10:05:00+00:00",
        **extra,
    }


def test_running_with_a_dead_pid_is_interrupted(tmp_path):
    run = fake_run(tmp_path, "r1", running_status(dead_pid()), epochs_done=2)
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    info = load_run(run)
    assert run_state(run)["state"] == "interrupted"
    assert info.state == "interrupted" and info.resumable
    assert info.duration_s == 300.0


def test_running_while_a_process_holds_the_lock(tmp_path):
    from modelkit.runs.lock import lock_run

    run = fake_run(tmp_path, "r", running_status(os.getpid()))
    lock = lock_run(run)
    try:
        assert run_state(run)["state"] == "running"
        assert not load_run(run).resumable
    finally:
        lock.release()
    assert run_state(run)["state"] == "interrupted"


def test_a_live_pid_that_holds_no_lock_is_not_training(tmp_path):
    """init, a recycled pid, this very process: a pid being alive says nothing about training."""
    for pid in (1, os.getpid()):
        run = fake_run(tmp_path, f"r{pid}", running_status(pid))
        assert run_state(run)["state"] == "interrupted"


def test_another_hosts_run_is_judged_by_its_lock_too(tmp_path):
    status = {**running_status(dead_pid()), "host": "some-other-machine"}
    run = fake_run(tmp_path, "r", status)
    assert run_state(run)["state"] == "interrupted"  # a folder copied from elsewhere


def test_missing_or_garbled_status_is_interrupted(tmp_path):
    assert run_state(fake_run(tmp_path, "none", None))["state"] == "interrupted"
    run = fake_run(tmp_path, "garbled", None)
    (run / "status.json").write_text("{half")
    assert run_state(run)["state"] == "interrupted"
    odd = fake_run(tmp_path, "odd", {"state": "exploded"})
    assert run_state(odd)["state"] == "interrupted"


def test_torn_last_line_is_skipped(tmp_path):
    run = fake_run(tmp_path, "r", {"state": "finished"}, epochs_done=3)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "train_lo')  # killed mid-write
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(b"\n\xff\xfe garbage\n[1, 2]\n")
    assert len(read_metrics(run)) == 3
    assert load_run(run).epochs_done == 3
    assert read_metrics(tmp_path / "nowhere") == []


def test_listing_newest_first_with_best_and_summary(tmp_path):
    fake_run(
        tmp_path,
        "old",
        {"state": "finished", "started_at": "2026-01-01T10:00:00+00:00"},
        epochs_done=2,
    )
    fake_run(
        tmp_path,
        "new",
        {"state": "failed", "started_at": "2026-02-01T10:00:00+00:00", "error": "boom"},
        epochs_done=1,
        optimizer="adam",
    )
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    runs = RunStore(tmp_path).list()
    assert [r.id for r in runs] == ["new", "old"]
    new, old = runs
    assert new.state == "failed" and new.error == "boom"
    assert old.best_val_acc == pytest.approx(0.52)  # best val_acc from metrics.jsonl
    assert old.epochs_done == 2 and old.epochs == 5 and old.classes == ["a", "b"]
    assert "resnet18 32px" in new.summary() and "adam" in new.summary()
    assert RunStore(tmp_path / "missing").list() == []


def test_a_garbled_run_does_not_break_the_list(tmp_path):
    fake_run(tmp_path, "good", {"state": "finished"})
    bad = fake_run(tmp_path, "bad", {"state": "finished"})
    (bad / "config.json").write_text("[1, 2, 3]")
    (bad / "classes.json").write_text('{"not": "a list"}')
    runs = {r.id: r for r in RunStore(tmp_path).list()}
    assert set(runs) == {"good", "bad"}
    assert runs["bad"].arch == "?" and runs["bad"].config == {} and runs["bad"].classes == []


def test_get_by_id_or_path(tmp_path):
    run = fake_run(tmp_path, "abc", {"state": "finished"})
    store = RunStore(tmp_path)
    assert store.get("abc").path == run
    assert store.get(run).id == "abc"
    with pytest.raises(FileNotFoundError, match="no such run"):
        store.get("nope")


def test_delete(tmp_path):
    store = RunStore(tmp_path)
    finished = fake_run(tmp_path, "done", {"state": "finished"})
    store.delete("done")
    assert not finished.exists()
    from modelkit.runs.lock import lock_run

    live = fake_run(tmp_path, "live", running_status(os.getpid()))
    lock = lock_run(live)
    try:
        with pytest.raises(RuntimeError, match="still running"):
            store.delete(live)
    finally:
        lock.release()
    assert live.exists()
    dead = fake_run(tmp_path, "dead", running_status(dead_pid()))
    store.delete("dead")  # an interrupted run can go
    assert not dead.exists()


def test_create_makes_unique_folders(tmp_path):
    store = RunStore(tmp_path / "runs")
    a, b = store.create("resnet18"), store.create("resnet18", "My Run / 2")
    assert a != b and a.is_dir() and b.is_dir()
    assert re.fullmatch(r"\d{8}-\d{6}-resnet18-[0-9a-f]{4}", a.name)
    assert re.fullmatch(r"\d{8}-\d{6}-My-Run-2-[0-9a-f]{4}", b.name)


def test_recorder_writes_status_log_and_metrics(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    from modelkit.runs.lock import lock_run

    lock = lock_run(run)  # as the Trainer holds it: 'running' is believed while it is held
    rec = RunRecorder(run)
    rec(RunStarted(str(run), {}, ["a", "b"], "cpu", "fp32", 8, 2, 0, 1))
    assert run_state(run)["state"] == "running"
    lock.release()
    rec(EpochEnd(0, 2, {"train_loss": 0.5, "val_acc": 0.75}, is_best=True))
    rec(Message("skipped x.png: not an image", "warning"))
    rec(Stopped(str(run), 1, 0))
    status = run_state(run)
    assert status["state"] == "stopped" and status["best"]["val_acc"] == 0.75
    assert read_metrics(run) == [{"epoch": 1, "train_loss": 0.5, "val_acc": 0.75}]
    # resuming keeps started_at and records resumed_at
    started_at = status["started_at"]
    rec = RunRecorder(run)
    rec(RunStarted(str(run), {}, ["a", "b"], "cpu", "fp32", 8, 2, 1, 1))
    status = run_state(run)
    assert status["started_at"] == started_at and status["resumed_at"]
    rec(Failed(str(run), "disk full"))
    assert run_state(run)["state"] == "failed" and load_run(run).error == "disk full"
    RunRecorder(run)(Finished(str(run), {}, {}, "early_stopping"))
    assert run_state(run)["reason"] == "early_stopping"
    log = (run / "log.txt").read_text()
    assert "[warning] skipped x.png" in log and "resumed at epoch 2" in log
    assert "[error] disk full" in log


def test_wait_until():
    assert wait_until(lambda: True, timeout=0.1)
    assert not wait_until(lambda: False, timeout=0.05, interval=0.01)


def _settle(run: Path, seconds_ago: float = 60) -> None:
    """Date a run's files in the past: the listing cache keeps only runs whose files settled."""
    when = time.time() - seconds_ago
    for f in run.iterdir():
        os.utime(f, (when, when))


def _count_reads(monkeypatch) -> list[str]:
    """The run folders whose files load_run parsed (read_json is its only JSON reader)."""
    reads: list[str] = []
    real = store_module.read_json

    def counting(path, default=None):
        if Path(path).name == "status.json":
            reads.append(Path(path).parent.name)
        return real(path, default)

    monkeypatch.setattr(store_module, "read_json", counting)
    return reads


def test_listing_again_reads_only_the_runs_that_changed(tmp_path, monkeypatch):
    """The Runs page lists every run on each rerun: an unchanged run is not parsed again, a run
    whose status or metrics changed shows its new state, and a deleted run drops out."""
    store_module.RUN_CACHE.clear()
    for name in ("a", "b", "c"):
        _settle(fake_run(tmp_path, name, {"state": "finished"}, epochs_done=1))
    live = fake_run(tmp_path, "live", {"state": "stopped"}, epochs_done=1)
    _settle(live)
    reads = _count_reads(monkeypatch)
    store = RunStore(tmp_path)
    first = {r.id: r for r in store.list()}
    assert sorted(reads) == ["a", "b", "c", "live"]
    reads.clear()
    again = {r.id: r for r in store.list()}
    assert reads == [] and again == first  # nothing changed, nothing parsed
    again["a"].best.clear()  # a caller changing what it got does not change the cache
    assert store.list()[0].best

    # the run is resumed and finishes an epoch: status.json replaced, metrics.jsonl appended
    (live / "status.json").write_text(json.dumps({"state": "finished"}))
    with open(live / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 2, "train_loss": 0.3, "val_acc": 0.9}) + "\n")
    reads.clear()
    now = {r.id: r for r in store.list()}
    assert reads == ["live"]  # only the changed run, and again while its files are fresh
    assert now["live"].state == "finished" and now["live"].epochs_done == 2
    assert now["live"].best_val_acc == pytest.approx(0.9)
    assert now["a"] == first["a"]
    reads.clear()
    store.list()
    assert reads == ["live"]  # changed within the last 2 s: its mtime could hide a same-size edit
    _settle(live)
    store.list()
    reads.clear()
    store.list()
    assert reads == []

    import shutil

    shutil.rmtree(tmp_path / "b")
    assert [r.id for r in store.list()] == ["live", "c", "a"]
    assert reads == []


def test_a_cached_running_run_turns_interrupted_when_its_process_ends(tmp_path, monkeypatch):
    """The files of a run whose process dies do not change: the cache still asks whether a
    process holds its lock on every listing, without reading the run again."""
    store_module.RUN_CACHE.clear()
    run = fake_run(tmp_path, "r", None, epochs_done=1)
    proc = subprocess.Popen(
        [sys.executable, "-c", (
            "import time; from modelkit.runs.lock import lock_run; "
            f"lock_run({str(run)!r}); print('locked', flush=True); time.sleep(60)"
        )],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "locked"
        (run / "status.json").write_text(json.dumps(running_status(proc.pid)))
        _settle(run)
        reads = _count_reads(monkeypatch)
        store = RunStore(tmp_path)
        assert store.list()[0].state == "running" and reads == ["r"]
        assert store.get("r").state == "running" and reads == ["r"]
    finally:
        proc.kill()
        proc.wait()
    assert store.list()[0].state == "interrupted"
    assert store.get("r").state == "interrupted"
    assert reads == ["r"]
