"""The Clean journal on a hostile dataset folder (issue #29): a dataset is untrusted input, so
the journal, the trash and every folder a change touches may be symlinks or crafted lines, and
none of them may make the journal write, move or create anything outside the dataset folder."""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import types
from pathlib import Path

import pytest

from modelkit.cleaning import journal as journal_module
from modelkit.cleaning.journal import JOURNAL_NAME, TRASH_NAME, Journal, JournalError
from modelkit.cli.main import main


def _line(id: int, src: str, dst: str, action: str = "relabel") -> str:
    entry = {"id": id, "action": action, "src": src, "dst": dst, "time": 0.0, "undoes": None}
    return json.dumps(entry) + "\n"


def _outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("secret")
    return out


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_symlinked_journal_is_refused_and_its_target_is_not_written(make_dataset, tmp_path):
    data = make_dataset(num_classes=2, per_class=2)
    target = _outside(tmp_path) / "secret.txt"
    (data / JOURNAL_NAME).symlink_to(target)
    with pytest.raises(JournalError, match="symlink") as err:
        Journal(data).remove(data / "red" / "red_00.png")
    assert JOURNAL_NAME in str(err.value)
    assert target.read_text() == "secret"
    assert (data / "red" / "red_00.png").is_file()


def test_the_cli_names_a_symlinked_journal(make_dataset, tmp_path, capsys):
    data = make_dataset(num_classes=2, per_class=2)
    (data / JOURNAL_NAME).symlink_to(_outside(tmp_path) / "secret.txt")
    assert main(["clean", str(data), "--journal"]) == 1
    err = capsys.readouterr().err
    assert JOURNAL_NAME in err and "symlink" in err


@pytest.mark.timeout(30)
def test_a_journal_that_is_not_a_file_is_refused_without_blocking(make_dataset):
    data = make_dataset(num_classes=2, per_class=2)
    os.mkfifo(data / JOURNAL_NAME)  # reading a FIFO would wait forever
    with pytest.raises(JournalError, match="not a regular file"):
        Journal(data).active()


def test_a_symlinked_trash_sends_nothing_outside(make_dataset, tmp_path):
    data = make_dataset(num_classes=2, per_class=2)
    outside = _outside(tmp_path)
    (data / TRASH_NAME).symlink_to(outside, target_is_directory=True)
    with pytest.raises(JournalError, match="symlink"):
        Journal(data).remove(data / "red" / "red_00.png")
    assert _listing(outside) == ["secret.txt"]
    assert (data / "red" / "red_00.png").is_file()


def test_a_symlinked_class_folder_receives_nothing(make_dataset, tmp_path):
    data = make_dataset(num_classes=2, per_class=2)
    outside = _outside(tmp_path)
    (data / "stolen").symlink_to(outside, target_is_directory=True)
    with pytest.raises(JournalError, match="symlink") as err:
        Journal(data).relabel(data / "red" / "red_00.png", data / "stolen")
    assert "stolen" in str(err.value)
    assert _listing(outside) == ["secret.txt"]
    assert (data / "red" / "red_00.png").is_file()


def test_a_symlinked_image_is_not_followed_out_of_the_dataset(make_dataset, tmp_path):
    data = make_dataset(num_classes=2, per_class=2)
    secret = _outside(tmp_path) / "secret.txt"
    (data / "red" / "link.png").symlink_to(secret)
    with pytest.raises(JournalError, match="symlink"):
        Journal(data).remove(data / "red" / "link.png")
    assert secret.read_text() == "secret" and os.stat(secret).st_nlink == 1
    assert not (data / TRASH_NAME).exists()


def test_undo_through_a_dot_folder_symlink_creates_nothing_outside(make_dataset, tmp_path):
    data = make_dataset(num_classes=2, per_class=2)
    outside = _outside(tmp_path)
    (data / ".cache").symlink_to(outside, target_is_directory=True)
    (data / JOURNAL_NAME).write_text(_line(1, ".cache/made/here/x.png", "red/red_00.png"))
    with pytest.raises(JournalError, match="symlink"):
        Journal(data).undo(1)
    assert _listing(outside) == ["secret.txt"]
    assert (data / "red" / "red_00.png").is_file()


def test_undo_does_not_pull_an_outside_file_in(make_dataset, tmp_path):
    data = make_dataset(num_classes=2, per_class=2)
    outside = _outside(tmp_path)
    (data / ".cache").symlink_to(outside, target_is_directory=True)
    (data / JOURNAL_NAME).write_text(_line(1, "red/secret.png", ".cache/secret.txt"))
    with pytest.raises(JournalError):
        Journal(data).undo(1)
    assert (outside / "secret.txt").read_text() == "secret"
    assert not (data / "red" / "secret.png").exists()


@pytest.mark.parametrize("src", [".", "red/..", "", "/etc/x.png", "red//x.png"])
def test_a_journal_line_cannot_move_a_file_to_or_out_of_the_root(make_dataset, tmp_path, src):
    data = make_dataset(num_classes=2, per_class=2)
    (data / JOURNAL_NAME).write_text(_line(1, src, "red/red_00.png"))
    before = _listing(tmp_path)
    with pytest.raises(JournalError):
        Journal(data).undo(1)
    assert _listing(tmp_path) == before  # no "data (2)" next to the dataset, nothing moved
    assert (data / "red" / "red_00.png").is_file()


def test_a_journal_line_cannot_move_the_journal(make_dataset):
    data = make_dataset(num_classes=2, per_class=2)
    journal = Journal(data)
    journal.keep(data / "red" / "red_00.png")
    with open(data / JOURNAL_NAME, "a") as f:
        f.write(_line(2, "red/journal.png", JOURNAL_NAME))
    text = (data / JOURNAL_NAME).read_text()
    with pytest.raises(JournalError):
        journal.undo(2)
    assert (data / JOURNAL_NAME).read_text() == text
    assert not (data / "red" / "journal.png").exists()


def test_a_change_the_journal_cannot_record_is_rolled_back_whatever_the_error(
    make_dataset, monkeypatch
):
    data = make_dataset(num_classes=2, per_class=2)

    def boom(*args, **kwargs):
        raise TypeError("cannot encode")

    monkeypatch.setattr(journal_module, "json", types.SimpleNamespace(loads=json.loads, dumps=boom))
    with pytest.raises(TypeError):
        Journal(data).relabel(data / "red" / "red_00.png", data / "green")
    assert (data / "red" / "red_00.png").is_file()
    assert not (data / "green" / "red_00.png").exists()


def test_a_malformed_line_is_skipped_and_named_and_the_rest_read(make_dataset, capsys):
    data = make_dataset(num_classes=2, per_class=2)
    journal = Journal(data)
    journal.remove(data / "red" / "red_00.png")
    with open(data / JOURNAL_NAME, "ab") as f:
        f.write(b"\xff\xfe not utf-8\n")
        f.write(_line(7, "red/a.png", "red/a.png", "keep").replace("7", "1e999").encode())
        f.write(b'{"id": 8, "action": "remove", "src": ["x"], "dst": "y", "time": 0}\n')
    journal.remove(data / "green" / "green_00.png")
    assert [(e.id, e.action) for e in journal.active()] == [(1, "remove"), (2, "remove")]
    assert [re.search(r"line (\d+)", m)[1] for m in journal.skipped] == ["2", "3", "4"]
    assert main(["clean", str(data), "--journal"]) == 0
    out = capsys.readouterr()
    assert "red/red_00.png" in out.out and "green/green_00.png" in out.out
    assert "line 2" in out.err and "line 4" in out.err


def test_a_writer_waits_for_the_journal_lock_and_takes_the_next_id(make_dataset):
    data = make_dataset(num_classes=2, per_class=2)
    journal = Journal(data)
    journal.keep(data / "red" / "red_00.png")
    got: list = []
    with open(data / JOURNAL_NAME, "a") as other:  # another process writing the journal
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        writer = threading.Thread(
            target=lambda: got.append(journal.keep(data / "red" / "red_01.png"))
        )
        writer.start()
        writer.join(timeout=1.0)
        blocked = writer.is_alive()
        other.write(_line(2, "green/green_00.png", "green/green_00.png", "keep"))
        other.flush()
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
    writer.join(timeout=30)
    assert blocked, "the writer did not wait for the journal lock"
    assert [e.id for e in journal.entries()] == [1, 2, 3] and got[0].id == 3
