"""RunFolder owns every path inside a run, and a run folder from elsewhere whose files are links
cannot make training write into the files they point at."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from modelkit.atomic import append_text
from modelkit.events import Message
from modelkit.runs.folder import RunFolder
from modelkit.runs.lock import RunLock, RunLockFileError, lock_run
from modelkit.runs.recorder import RunRecorder
from modelkit.runs.store import UNREADABLE, RunStore, load_run
from modelkit.training.loop import Trainer, TrainingError

ROOT = Path(__file__).resolve().parents[2]
# the names of a run's files, which only modelkit/runs/folder.py may spell
RUN_FILE_NAMES = re.compile(
    r'"checkpoints"|best\.pt|last\.pt|splits\.json|status\.json|metrics\.jsonl|classes\.json'
)


def test_a_trained_run_answers_what_the_pages_ask(trained_run):
    folder = RunFolder(trained_run)
    assert folder.is_run() and folder.has_checkpoint() and folder.can_resume()
    assert folder.saved_checkpoint() == folder.best and folder.best.is_file()
    assert folder.can_evaluate() and folder.evaluated_splits() == ["val"]
    sizes = folder.split_sizes()
    assert sizes["train"] > 0 and sizes["val"] > 0 and sum(sizes.values()) == 30
    assert load_run(trained_run).folder.path == folder.path


def test_a_run_names_the_data_set_it_trained_on(trained_run):
    run = load_run(trained_run)
    data_dir = Path(run.config["data_dir"])
    assert run.dataset_path == str(data_dir) and run.dataset_name == data_dir.name
    assert run.dataset_images == 30
    assert run.dataset_label() == f"{data_dir.name} · 30 images"


def test_an_empty_folder_has_nothing_to_evaluate(tmp_path):
    folder = RunFolder(tmp_path)
    assert not folder.is_run() and not folder.has_checkpoint() and not folder.can_evaluate()
    assert folder.split_sizes() == {} and folder.read_splits() is None
    folder.splits.write_text("[1, 2")  # torn
    assert folder.split_sizes() == {}
    with pytest.raises(ValueError, match="no checkpoint called 'final'"):
        folder.checkpoint("final")


def test_no_front_end_spells_a_run_file_name():
    """Pages, studio and the CLI ask RunFolder; none knows where a run keeps its files."""
    spelt = []
    for base in ("app_pages", "studio", "modelkit/cli"):
        for path in sorted((ROOT / base).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if RUN_FILE_NAMES.search(line):
                    spelt.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not spelt, "\n".join(spelt)


@pytest.fixture
def foreign_run(trained_run, tmp_path) -> Path:
    """A copy of a trained run, as if it came from elsewhere."""
    run = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, run)
    return run


@pytest.fixture
def user_document(tmp_path) -> Path:
    doc = tmp_path / "home" / "thesis.txt"
    doc.parent.mkdir()
    doc.write_text("chapter one\n" * 150)  # ~1,800 bytes a person cares about
    return doc


def test_a_linked_log_or_metrics_file_is_never_written_through(foreign_run, user_document):
    before = user_document.read_bytes()
    folder = RunFolder(foreign_run)
    folder.log.unlink(missing_ok=True)
    folder.log.symlink_to(user_document)
    with pytest.raises(OSError):
        RunRecorder(foreign_run)(Message("a line that must not reach the document"))
    folder.metrics.unlink()
    folder.metrics.symlink_to(user_document)
    with pytest.raises(OSError):
        append_text(folder.metrics, '{"epoch": 3}\n', sync=True)
    assert user_document.read_bytes() == before


def test_a_run_whose_files_are_links_is_listed_unreadable_and_not_resumed(
    foreign_run, user_document
):
    before = user_document.read_bytes()
    folder = RunFolder(foreign_run)
    folder.log.unlink(missing_ok=True)
    folder.log.symlink_to(user_document)
    info = load_run(foreign_run)
    assert info.state == UNREADABLE and "log.txt is a link" in info.problem
    assert [r.state for r in RunStore(foreign_run.parent).list()] == [UNREADABLE]
    with pytest.raises(TrainingError, match="refused to resume: log.txt is a link"):
        Trainer.resume(foreign_run)
    assert user_document.read_bytes() == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_linked_lock_file_is_refused_and_its_target_never_truncated(
    foreign_run, user_document, link
):
    before = user_document.read_bytes()
    lock = RunFolder(foreign_run).lock
    lock.unlink(missing_ok=True)
    if link == "symlink":
        lock.symlink_to(user_document)
    else:
        os.link(user_document, lock)
    with pytest.raises(RunLockFileError, match="lock file"):
        lock_run(foreign_run)
    assert user_document.read_bytes() == before


def test_a_plain_lock_file_is_taken_and_holds_the_pid(foreign_run):
    with RunLock(foreign_run):
        assert RunFolder(foreign_run).lock.read_text() == str(os.getpid())
