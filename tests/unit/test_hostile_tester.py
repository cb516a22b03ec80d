"""Issue 16: each hole a hostile tester found, reproduced, and now closed.

1 allowed roots on every path, 3 zip bombs in pieces, 4 one writer per run, 5 a bad run folder,
6 names as text, 7 the smaller ones. (2, the host allow-list, needs a real server: tests/e2e.)
"""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from modelkit.cli.main import main
from modelkit.config import ConfigError, TrainConfig
from modelkit.csvcells import read_cell, safe_cell
from modelkit.data.archive import ArchiveError, extract_dataset_zip
from modelkit.data.report import build_report
from modelkit.data.scan import scan_dataset
from modelkit.data.uploads import delete_upload, list_uploads, unpack_upload
from modelkit.errors import ModelkitError
from modelkit.evaluation.embeddings import Embeddings, to_csv
from modelkit.evaluation.metrics import load_evaluation
from modelkit.jobs import JobBusyError, JobRegistry
from modelkit.models.checkpoint import CheckpointError
from modelkit.paths import PathNotAllowedError, confine_to, resolve_allowed
from modelkit.runs.lock import RunLockedError, is_locked, lock_run
from modelkit.runs.store import RunStore
from modelkit.serving.predictor import Predictor
from studio.figures import confusion_figure, plotly_label, topk_bar
from studio.text import md

REPO = Path(__file__).resolve().parents[2]


# -- 1. allowed roots --------------------------------------------------------------------------
@pytest.fixture
def roots(tmp_path, helpers):
    """An allowed root holding a dataset, and a dataset outside it."""
    inside = tmp_path / "allowed"
    helpers.write_dataset(inside / "data", num_classes=2, per_class=4)
    outside = helpers.write_dataset(tmp_path / "elsewhere", num_classes=2, per_class=4)
    return inside, outside


def test_a_path_outside_the_roots_is_refused_without_saying_what_is_there(roots, tmp_path):
    inside, outside = roots
    assert resolve_allowed(inside / "data", [inside]) == (inside / "data").resolve()
    (inside / "link").symlink_to(outside)
    messages = set()
    for typed in (outside, outside / "red", tmp_path / "missing", "/proc/self", inside / "link"):
        with pytest.raises(PathNotAllowedError) as exc:
            resolve_allowed(typed, [inside])
        assert str(typed) in str(exc.value)
        messages.add(str(exc.value).replace(str(typed), "PATH"))
    assert len(messages) == 1  # the same words whether it exists, is a folder, or is a link


def test_the_registry_refuses_a_dataset_or_weights_outside_the_roots(roots, tmp_path, helpers):
    inside, outside = roots
    registry = JobRegistry(roots=lambda: [inside])
    with pytest.raises(ConfigError, match="data_dir: .* outside the folders"):
        registry.launch(helpers.fast_config(outside, inside / "runs"))
    weights = outside / "model.pt"
    weights.write_bytes(b"\x76 not a checkpoint")
    config = helpers.fast_config(inside / "data", inside / "runs", weights=str(weights))
    with pytest.raises(ConfigError, match="weights: .* outside the folders") as exc:
        registry.launch(config)
    assert "damaged" not in str(exc.value) and "not found" not in str(exc.value)
    assert registry.current is None and not (inside / "runs").exists()


def test_a_confined_scan_skips_links_that_leave_the_roots_and_lists_them(roots):
    inside, outside = roots
    data = inside / "data"
    (data / "stolen").symlink_to(outside / "red")  # a class folder that leads out
    (data / "red" / "peek.png").symlink_to(outside / "green" / "green_00.png")
    with confine_to([inside]):
        index = scan_dataset(data)
        with pytest.raises(PathNotAllowedError):
            scan_dataset(outside)
    assert index.classes == ["green", "red"]
    assert sorted(Path(p).name for p in index.outside_roots) == ["peek.png", "stolen"]
    assert all("peek.png" not in s.path for s in index.splits["train"] + index.splits["val"])
    problems = build_report(index).problems
    assert any("stolen" in p and "outside the folders" in p for p in problems)
    assert "stolen" in scan_dataset(data).classes  # the command line is not confined


# -- 3. zips ----------------------------------------------------------------------------------
def _zip_of_zeros(entries: int, size: int = 1024 * 1024) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(entries):
            zf.writestr(f"data/a/{i:04d}.png", b"\0" * size)
    return buf.getvalue()


def test_a_zip_bomb_in_small_pieces_is_refused_as_a_whole(tmp_path):
    # 30 entries of 1 MiB zeros: each entry is at the 1 MiB per-entry threshold, not above it.
    data = _zip_of_zeros(30)
    assert len(data) < 100_000
    with pytest.raises(ArchiveError, match="as a whole .* zip bomb"):
        extract_dataset_zip(data, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_entry_count_is_read_from_the_end_record_before_parsing(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(50):
            zf.writestr(f"d/{i}.txt", b"x")
    parsed = []
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: parsed.append(1))
    with pytest.raises(ArchiveError, match="lists 50 entries, more than 30"):
        extract_dataset_zip(buf.getvalue(), tmp_path / "out", max_entries=30)
    assert parsed == []  # refused before zipfile read a single entry


def test_an_end_record_that_lies_about_the_count_is_still_caught(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(50):
            zf.writestr(f"d/{i}.txt", b"x")
    data = bytearray(buf.getvalue())
    eocd = data.rfind(b"PK\x05\x06")
    data[eocd + 8 : eocd + 12] = (1).to_bytes(2, "little") * 2  # "1 entry"
    with pytest.raises(ArchiveError, match="more than 30 entries"):
        extract_dataset_zip(bytes(data), tmp_path / "out", max_entries=30)


def _dataset_zip(helpers, tmp_path, name="pets") -> bytes:
    root = helpers.write_dataset(tmp_path / "src" / name, num_classes=2, per_class=3)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(root.rglob("*.png")):
            zf.write(path, f"{name}/{path.relative_to(root)}")
    return buf.getvalue()


def test_the_same_zip_twice_reuses_its_folder_and_a_quota_bounds_uploads(tmp_path, helpers):
    uploads = tmp_path / "uploads"
    data = _dataset_zip(helpers, tmp_path)
    first, reused = unpack_upload(io.BytesIO(data), uploads, name="pets")
    again, reused_again = unpack_upload(io.BytesIO(data), uploads, name="pets")
    assert (reused, reused_again) == (False, True) and again == first
    assert [u.name for u in list_uploads(uploads)] == ["pets"]
    other = _dataset_zip(helpers, tmp_path, "birds")
    with pytest.raises(ArchiveError, match="uploads quota"):
        used = list_uploads(uploads)[0].bytes
        unpack_upload(io.BytesIO(other), uploads, name="birds", quota=used)
    delete_upload(uploads, "pets")  # at the person's request: the zip itself is theirs
    assert list_uploads(uploads) == []
    with pytest.raises(ModelkitError):
        delete_upload(uploads, "../src")
    assert (tmp_path / "src").is_dir()
    assert unpack_upload(io.BytesIO(data), uploads, name="pets")[1] is False  # unpacked anew


# -- 4. one writer per run ----------------------------------------------------------------------
def test_a_locked_run_is_refused_and_a_killed_holder_leaves_it_resumable(
    trained_run, tmp_path, capsys
):
    run = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, run)
    assert not is_locked(run)
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from modelkit.runs.lock import lock_run; "
            f"lock_run({str(run)!r}); print('locked', flush=True); time.sleep(600)"
        )],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert is_locked(run)
        with pytest.raises(RunLockedError, match=f"run {run.name} is being trained by another"):
            lock_run(run)
        assert main(["train", "--resume", str(run)]) == 1
        err = capsys.readouterr().err
        assert "being trained by another process" in err and "Traceback" not in err
        with pytest.raises(RunLockedError):
            JobRegistry().launch(resume_dir=run)
        with pytest.raises(Exception, match="still running"):
            RunStore(run.parent).delete(run)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not is_locked(run)  # the kernel dropped the lock with the process
    lock_run(run).release()


def test_training_holds_the_lock_for_as_long_as_it_runs(make_config):
    from modelkit.training.loop import Trainer

    seen = []
    trainer = Trainer(make_config(epochs=1), [lambda e: seen.append(is_locked(trainer.run_dir))])
    result = trainer.fit()
    assert result.state == "finished" and all(seen) and seen
    assert not is_locked(result.run_dir)


def test_one_training_at_a_time_whatever_starts_it():
    registry = JobRegistry()
    done = threading.Event()
    registry.start_other("search s1", lambda: None, lambda: not done.is_set())
    with pytest.raises(JobBusyError, match="search s1 is still running"):
        registry.launch(TrainConfig(data_dir="x"))
    with pytest.raises(JobBusyError):
        with registry.hold("the learning-rate finder"):
            pass
    done.set()
    with registry.hold("the learning-rate finder"):
        with pytest.raises(JobBusyError, match="learning-rate finder"):
            registry.refuse_if_busy()
    registry.refuse_if_busy()  # free again


# -- 5. a bad run folder -------------------------------------------------------------------------
def _copy(trained_run: Path, runs: Path, name: str) -> Path:
    return Path(shutil.copytree(trained_run, runs / name))


@pytest.mark.parametrize(
    "file, change, reason",
    [
        ("status.json", {"started_at": 12345}, "status.json: started_at is int"),
        ("status.json", {"started_at": None, "best": {"val_acc": "high"}}, "best: val_acc"),
        ("config.json", {"epochs": "many"}, "config.json: epochs"),
        ("classes.json", None, "classes.json"),
        ("metrics.jsonl", None, "metrics.jsonl line 1: val_acc"),
    ],
)
def test_a_run_with_wrong_types_is_listed_as_unreadable(
    trained_run, tmp_path, capsys, file, change, reason
):
    runs = tmp_path / "runs"
    good = _copy(trained_run, runs, "good")
    bad = _copy(trained_run, runs, "bad")
    path = bad / file
    if file == "classes.json":
        path.write_text(json.dumps(["ok", {"evil": 1}]))
    elif file == "metrics.jsonl":
        path.write_text(json.dumps({"epoch": 1, "val_acc": "x"}) + "\n")
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    listed = {r.id: r for r in RunStore(runs).list()}
    assert listed["good"].state == "finished"
    assert listed["bad"].state == "unreadable" and reason in listed["bad"].problem
    assert not listed["bad"].resumable
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "unreadable" in out and reason in out
    RunStore(runs).delete("bad")
    assert not bad.exists() and good.exists()


@pytest.mark.parametrize(
    "change",
    [{"confusion_matrix": "[[1]]"}, {"classes": [1, 2, 3]}, {"accuracy": "great"}, {"macro": []}],
)
def test_a_saved_evaluation_with_wrong_types_reads_as_not_evaluated(trained_run, tmp_path, change):
    run = _copy(trained_run, tmp_path / "runs", "run")
    assert load_evaluation(run, "val") is not None
    path = run / "evaluation" / "val.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    assert load_evaluation(run, "val") is None


def _tamper(checkpoint: Path, **changes) -> Path:
    payload = torch.load(checkpoint, weights_only=True)
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            payload[outer][inner] = value
        else:
            payload[key] = value
    torch.save(payload, checkpoint)
    return checkpoint


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"config": [1, 2]}, "'config' is not a dictionary"),
        ({"preprocess": [1, 2]}, "'preprocess' is not a dictionary"),
        ({"preprocess.resize_size": 40000}, "resize size 40000 does not match image size 32"),
        ({"preprocess.image_size": 4096}, "image size 4096"),
        ({"classes": ["a", 7, "c"]}, "a class name is int"),
        ({"classes": ["a", "b\nc", "d"]}, "control characters"),
        ({"classes": ["x" * 300, "b", "c"]}, "longer than 255"),
        ({"arch": "os.system"}, "not a known architecture"),
        ({"config.head_hidden": [2**40]}, "head_hidden"),
    ],
)
def test_checkpoint_metadata_is_validated_naming_the_file(tmp_path, helpers, changes, reason):
    ckpt = helpers.write_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    _tamper(ckpt, **changes)
    with pytest.raises(CheckpointError, match="metadata is not valid") as exc:
        Predictor(ckpt, device="cpu")
    assert str(ckpt) in str(exc.value) and reason in str(exc.value)


# -- 6. names as text ---------------------------------------------------------------------------
def test_names_are_escaped_for_markdown_and_plotly():
    name = "**x** [a](http://h/b) ![i](http://h/i.png) :red[t] $y$ <a href='u'>l</a>"
    escaped = md(name)
    assert not re.search(r"(?<!\\)[*\[\]$<>`]|(?<!\\):\S", escaped)  # no markup is left
    assert escaped.replace("\\", "").replace("\u2060", "") == name  # shown as it is
    label = plotly_label("<a href='http://h'>x</a> %{y}")
    assert "<a" not in label and "%{" not in label
    fig = confusion_figure([[1, 0], [0, 1]], ["<b>cat</b>", "dog"])
    assert "<b>" not in "".join(fig.data[0].x) and fig.data[1].customdata[0][0] == "<b>cat</b>"
    assert "<" not in "".join(topk_bar(["<i>x</i>"], [1.0]).data[0].y)


# -- 7. smaller ones ------------------------------------------------------------------------------
def test_delete_refuses_anything_but_a_direct_child_of_the_runs_folder(trained_run, tmp_path):
    runs = tmp_path / "runs"
    _copy(trained_run, runs, "mine")
    victim = _copy(trained_run, tmp_path / "precious", "kept")
    store = RunStore(runs)
    for crafted in ("../precious/kept", str(victim)):
        with pytest.raises(ModelkitError, match="not a run folder directly inside"):
            store.delete(crafted)
    (runs / "link").symlink_to(victim)
    with pytest.raises(ModelkitError):
        store.delete("link")
    assert victim.is_dir()


def test_csv_cells_that_start_like_formulas_are_neutralised():
    for text in ("=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "'=x"):
        assert safe_cell(text).startswith("'") and read_cell(safe_cell(text)) == text
    assert safe_cell(-0.5) == -0.5 and safe_cell("cat") == "cat"
    emb = Embeddings(
        features=torch.zeros(1, 2).numpy(),
        paths=["/d/=cmd.png"],
        labels=torch.zeros(1, dtype=torch.long).numpy(),
        classes=["=1+1"],
        split="val",
    )
    row = to_csv(emb).splitlines()[1].split(",")
    assert row[0] == "/d/=cmd.png" and row[2] == "'=1+1"


def test_showing_errors_and_hosts_are_restricted_in_the_shipped_config():
    import tomllib

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] in ("type", "none")
    assert set(config["server"]["allowedHosts"]) >= {"localhost", "127.0.0.1"}
    assert "*" not in config["server"]["allowedHosts"]
