"""Issue #29's smaller holes, each reproduced and closed: a ZIP64 end record that lies, two
uploads racing past the quota, a run marked running by a process that holds no lock, a damaged
calibration report, and names that carry terminal escape codes. (The server's and the memory
errors' are in test_serve_limits.py and test_disk_and_memory.py.)"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from helpers import make_zip

from modelkit.data import uploads as uploads_module
from modelkit.data.archive import ArchiveError, extract_dataset_zip
from modelkit.data.uploads import list_uploads, unpack_upload

REPO = Path(__file__).resolve().parents[2]


# -- a ZIP64 end record that lies -----------------------------------------------------------------
def _zip64_that_lies(entries: int) -> bytes:
    """A zip of ``entries`` files whose classic end record claims one entry, while a ZIP64 end
    record in front of it, which zipfile reads whenever it is there, gives the real list."""
    data = make_zip({f"d/{i}.txt": b"x" for i in range(entries)})
    at = data.rfind(b"PK\x05\x06")
    _, _, _, _, count, size, offset, _ = struct.unpack("<4s4H2LH", data[at : at + 22])
    zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    first = 46 + len("d/0.txt")  # the classic record's list: the first header alone
    classic = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, first, offset, 0)
    return data[:at] + zip64 + locator + classic


def test_a_zip64_end_record_that_lies_about_the_count_is_still_counted(tmp_path, monkeypatch):
    data = _zip64_that_lies(50)
    assert len(zipfile.ZipFile(io.BytesIO(data)).infolist()) == 50  # what zipfile would parse
    parsed = []
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: parsed.append(1))
    with pytest.raises(ArchiveError, match="lists 50 entries, more than 30"):
        extract_dataset_zip(data, tmp_path / "out", max_entries=30)
    assert parsed == [] and not (tmp_path / "out").exists()


def test_a_file_list_that_is_not_where_the_end_record_says_is_refused(tmp_path):
    data = bytearray(make_zip({f"d/{i}.txt": b"x" for i in range(5)}))
    at = data.rfind(b"PK\x05\x06")
    data[at + 12 : at + 16] = (int.from_bytes(data[at + 12 : at + 16], "little") - 10).to_bytes(
        4, "little"
    )  # the list's size, 10 bytes short: the count would stop early
    with pytest.raises(ArchiveError, match="damaged file list"):
        extract_dataset_zip(bytes(data), tmp_path / "out")


# -- two uploads at once --------------------------------------------------------------------------
def _dataset_zip(name: str) -> bytes:
    from helpers import png_bytes

    return make_zip({f"{name}/{c}/{i}.png": png_bytes(size=24 + i) for c in "ab" for i in range(3)})


def test_two_uploads_at_once_cannot_both_pass_the_quota(tmp_path, monkeypatch):
    """The first upload is held half-way through unpacking; the second, started meanwhile, must
    count the first one's bytes, so only one of the two fits."""
    uploads = tmp_path / "uploads"
    pets, birds = _dataset_zip("pets"), _dataset_zip("birds")
    one = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(pets)).infolist())
    quota = one + one // 2  # room for one of them, not two
    first_inside, let_first_go, second_checked = (threading.Event() for _ in range(3))
    unpack, listing = uploads_module.extract_dataset_zip, uploads_module.list_uploads

    def slow_unpack(source, *args, **kwargs):
        if threading.current_thread().name == "first":
            first_inside.set()
            let_first_go.wait(30)
        return unpack(source, *args, **kwargs)

    def watched_listing(folder):
        if threading.current_thread().name == "second":
            second_checked.set()
        return listing(folder)

    monkeypatch.setattr(uploads_module, "extract_dataset_zip", slow_unpack)
    monkeypatch.setattr(uploads_module, "list_uploads", watched_listing)
    outcome: dict[str, object] = {}

    def upload(data: bytes, name: str) -> None:
        try:
            outcome[name] = unpack_upload(io.BytesIO(data), uploads, name=name, quota=quota)
        except ArchiveError as exc:
            outcome[name] = exc

    first = threading.Thread(target=upload, args=(pets, "pets"), name="first")
    second = threading.Thread(target=upload, args=(birds, "birds"), name="second")
    first.start()
    assert first_inside.wait(30)
    second.start()
    second_checked.wait(1)  # before the fix the second upload checks the quota right away
    let_first_go.set()
    first.join(60)
    second.join(60)
    refused = [v for v in outcome.values() if isinstance(v, ArchiveError)]
    assert len(refused) == 1 and "uploads quota" in str(refused[0])
    assert len(list_uploads(uploads)) == 1
    assert sum(u.bytes for u in list_uploads(uploads)) <= quota


def test_the_uploads_lock_is_not_followed_through_a_link(tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    target = tmp_path / "document.txt"
    target.write_text("mine")
    (uploads / uploads_module.LOCK).symlink_to(target)
    with pytest.raises(ArchiveError, match="link"):
        unpack_upload(io.BytesIO(_dataset_zip("pets")), uploads, name="pets")
    assert target.read_text() == "mine" and list_uploads(uploads) == []


# -- a run marked running that no process trains --------------------------------------------------
def _running_copy(trained_run: Path, runs: Path, pid: int) -> Path:
    run = Path(shutil.copytree(trained_run, runs / "r"))
    status = json.loads((run / "status.json").read_text())
    status.update(state="running", pid=pid, host=socket.gethostname(), ended_at=None)
    status.pop("proc_start", None)  # a folder from elsewhere need not say when its pid started
    (run / "status.json").write_text(json.dumps(status))
    return run


@pytest.mark.parametrize("pid", [1, os.getpid()], ids=["init", "a live process not training"])
def test_a_run_marked_running_whose_lock_no_one_holds_can_be_resumed_and_deleted(
    trained_run, tmp_path, pid
):
    from modelkit.runs.store import RunStore, run_state

    runs = tmp_path / "runs"
    run = _running_copy(trained_run, runs, pid)
    info = RunStore(runs).get(run)
    assert run_state(run)["state"] == "interrupted"
    assert info.state == "interrupted" and info.resumable
    RunStore(runs).delete(run)
    assert not run.exists()


def test_a_run_is_running_exactly_while_a_process_holds_its_lock(trained_run, tmp_path):
    from modelkit.runs.store import RunStore, run_state

    runs = tmp_path / "runs"
    run = _running_copy(trained_run, runs, 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import time; from modelkit.runs.lock import lock_run; "
            f"lock_run({str(run)!r}); print('locked', flush=True); time.sleep(600)"
        )],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run_state(run)["state"] == "running"
        assert RunStore(runs).get(run).state == "running"
        with pytest.raises(Exception, match="still running"):
            RunStore(runs).delete(run)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert RunStore(runs).get(run).state == "interrupted"


# -- a damaged calibration report -----------------------------------------------------------------
def _damage(report: dict, change: dict) -> dict:
    """``report`` with ``change`` applied (a value of ``...`` removes the field)."""
    return {k: v for k, v in {**report, **change}.items() if v is not ...}


@pytest.mark.parametrize(
    "change, what",
    [
        ({"temperature": "hot"}, "temperature is missing or not a number"),
        ({"nll_after": ...}, "nll_after is missing"),
        ({"samples": "many"}, "samples"),
        ({"target_accuracy": 7}, "target_accuracy"),
        ({"curve": {"threshold": [0.5], "coverage": [1.0, 0.5], "accuracy": [0.9]}}, "lengths"),
        ({"curve": {"threshold": [40.0], "coverage": [1.0], "accuracy": [0.9]}}, "0 to 1"),
        ({"bins_after": [{"low": 0, "high": 1, "confidence": 0.5, "accuracy": 0.5}]}, "count"),
        ({"bins_before": "many"}, "bins_before"),
    ],
)
def test_a_damaged_calibration_report_is_named_not_drawn(trained_run, tmp_path, change, what):
    from modelkit.evaluation import calibration as cal
    from modelkit.evaluation.calibration_report import read_report

    run = Path(shutil.copytree(trained_run, tmp_path / "r"))
    path = run / "calibration.json"
    good = json.loads(path.read_text())
    assert read_report(run).report == good and read_report(run).problem is None
    path.write_text(json.dumps(_damage(good, change)))
    outcome = read_report(run)
    assert outcome.report is None and cal.load_report(run) is None
    assert outcome.problem.startswith(f"{path}: damaged calibration file (")
    assert what in outcome.problem and "calibrate the run again" in outcome.problem
    cal.set_threshold(run, 0.5)  # saving a threshold leaves the damaged report alone
    assert read_report(run).problem == outcome.problem


def test_a_calibration_report_that_is_not_json_or_not_a_file_is_damaged(trained_run, tmp_path):
    from modelkit.evaluation.calibration_report import read_report

    run = Path(shutil.copytree(trained_run, tmp_path / "r"))
    path = run / "calibration.json"
    for make in (lambda: path.write_text("{"), lambda: os.mkfifo(path)):
        path.unlink()
        make()
        assert "damaged calibration file (not a readable JSON file)" in read_report(run).problem
    path.unlink()
    assert read_report(run) == read_report(run).__class__(None)  # none at all: not calibrated


# -- names that carry terminal escape codes -------------------------------------------------------
OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # "write 'echo pwned' to the clipboard"


def _raw(text: str) -> bool:
    """Whether ``text`` holds a control character a terminal would act on (newlines aside)."""
    return any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in text)


def test_printable_shows_control_characters_and_bad_bytes_as_escapes():
    from modelkit.names import printable

    assert printable(f"run{OSC52}") == "run\\x1b]52;c;ZWNobyBwd25lZA==\\x07"
    assert printable("a\x9b2Jb") == "a\\x9b2Jb"  # the one-character CSI
    assert printable("cat\u202egnp.exe") == "cat\\u202egnp.exe"  # shown right-to-left otherwise
    assert printable("two\nlines\r") == "two\\x0alines\\x0d"  # no forged line either
    assert printable("caf\udce9.png") == "caf\\xe9.png"  # a Latin-1 file name, not UTF-8
    assert printable("chat été 猫") == "chat été 猫"


def test_the_runs_listing_prints_a_run_name_with_escape_codes_as_text(trained_run, tmp_path,
                                                                      capsys):  # fmt: skip
    from modelkit.cli.main import main

    runs = tmp_path / "runs"
    shutil.copytree(trained_run, runs / f"evil{OSC52}")
    (runs / f"bad{OSC52}").mkdir()
    (runs / f"bad{OSC52}" / "config.json").write_text("{")  # an unreadable run names itself too
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert not _raw(out) and out.count("\\x1b]52;c;ZWNobyBwd25lZA==\\x07") >= 2


def test_journal_and_error_lines_print_file_names_as_text(make_dataset, tmp_path, capsys):
    from modelkit.cleaning.journal import Journal
    from modelkit.cli.main import main

    data = make_dataset(num_classes=2, per_class=2)
    evil = data / "red" / f"x{OSC52}.png"
    (data / "red" / "red_00.png").rename(evil)
    Journal(data).remove(evil)
    assert main(["clean", str(data), "--journal"]) == 0
    out = capsys.readouterr().out
    assert "x\\x1b]52" in out and not _raw(out)
    assert main(["train", "--resume", str(tmp_path / f"gone{OSC52}")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "gone\\x1b]52" in err and not _raw(err)


def test_training_messages_and_the_dataset_report_print_names_as_text(make_dataset, capsys):
    from modelkit.cli.main import main
    from modelkit.events import Message
    from modelkit.training.progress import ProgressPrinter

    stream = io.StringIO()
    ProgressPrinter(stream)(Message(f"skipped {OSC52}.png: not an image\nsecond line"))
    assert (
        stream.getvalue()
        == "skipped \\x1b]52;c;ZWNobyBwd25lZA==\\x07.png: not an image\nsecond line\n"
    )
    data = make_dataset(num_classes=2, per_class=3)
    (data / "red").rename(data / f"red{OSC52}")
    assert main(["check", str(data)]) == 0
    out = capsys.readouterr().out
    assert "red\\x1b]52" in out and not _raw(out)
