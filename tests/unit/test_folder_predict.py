"""Predictions over a folder: every image exactly once, across kills, reruns and shards."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import write_dataset

from modelkit.cli.main import main
from modelkit.serving.csv_sink import CsvSinkError, ResumableCsv
from modelkit.serving.folder_predict import csv_fields, parse_shard, predict_folder, walk
from modelkit.serving.predictor import Predictor

REPO = Path(__file__).resolve().parents[2]


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def photos(tmp_path) -> Path:
    root = write_dataset(tmp_path / "photos", num_classes=3, per_class=8, seed=3)
    (root / "red" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "notes.txt").write_text("the photographer's notes")
    (root / ".DS_Store").write_bytes(b"\0\0")
    return root


def test_every_image_gets_one_row_and_an_unreadable_one_says_why(trained_run, photos, tmp_path):
    out = tmp_path / "out.csv"
    predictor = Predictor(trained_run, device="cpu")
    summary = predict_folder(predictor, [photos], out, top_k=2)
    rows = rows_of(out)
    assert len(rows) == 25 == summary.written and summary.not_images == 1
    assert list(rows[0]) == csv_fields(2)
    broken = [r for r in rows if r["path"].endswith("broken.jpg")]
    assert broken[0]["error"] and "broken.jpg" in broken[0]["error"] and not broken[0]["label_1"]
    good = [r for r in rows if not r["error"]]
    assert all(r["label_1"] in {"red", "green", "blue"} for r in good)
    # the same answers as classifying the files one call at a time
    direct = predictor.predict_many([r["path"] for r in good], top_k=2)
    assert [r["label_1"] for r in good] == [p.label for p in direct]
    assert [float(r["probability_1"]) for r in good] == pytest.approx(
        [p.confidence for p in direct], abs=1e-5
    )


def test_decoding_ahead_or_in_turn_writes_the_same_rows(trained_run, photos, tmp_path):
    predictor = Predictor(trained_run, device="cpu", batch_size=4)
    outs = [tmp_path / "in_turn.csv", tmp_path / "overlapped.csv"]
    for out, overlap in zip(outs, (False, True)):
        summary = predict_folder(predictor, [photos], out, top_k=2, decoders=3, overlap=overlap)
        assert summary.written == 25 and summary.failed == 1
    in_turn, overlapped = rows_of(outs[0]), rows_of(outs[1])
    assert [r["path"] for r in in_turn] == [r["path"] for r in overlapped]
    assert [r["label_1"] for r in in_turn] == [r["label_1"] for r in overlapped]


def test_a_rerun_continues_and_a_torn_last_row_is_written_again(trained_run, photos, tmp_path):
    out = tmp_path / "out.csv"
    predictor = Predictor(trained_run, device="cpu", batch_size=4)
    predict_folder(predictor, [photos], out, top_k=1)
    full = rows_of(out)
    text = out.read_text(encoding="utf-8")
    # as if killed mid-write: 10 complete rows and half of the 11th, unquoted and quoted
    lines = text.splitlines(keepends=True)
    out.write_text("".join(lines[:11]) + lines[11][: len(lines[11]) // 2], encoding="utf-8")
    again = predict_folder(predictor, [photos], out, top_k=1)
    assert again.recovered_torn_row and again.already_done == 10 and again.written == 15
    rows = rows_of(out)
    assert sorted(r["path"] for r in rows) == sorted(r["path"] for r in full)
    assert len({r["path"] for r in rows}) == len(rows)
    done = predict_folder(predictor, [photos], out, top_k=1)
    assert done.written == 0 and done.already_done == 25 and len(rows_of(out)) == 25


def test_a_torn_quoted_name_is_recovered_too(tmp_path):
    out = tmp_path / "quoted.csv"
    with ResumableCsv(out, ["path", "error"]) as sink:
        sink.append(
            [{"path": "a,b.jpg", "error": ""}, {"path": 'line\nbreak "x".jpg', "error": ""}]
        )
    text = out.read_text(encoding="utf-8")
    out.write_text(text[: text.index("break")], encoding="utf-8")  # torn inside the quotes
    with ResumableCsv(out, ["path", "error"]) as sink:
        assert sink.recovered_torn_row and sink.done == {"a,b.jpg"}


def test_other_columns_or_a_second_writer_are_refused_by_name(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("path,label_1,probability_1,unknown,error\n", encoding="utf-8")
    with pytest.raises(CsvSinkError, match="out.csv.*another --top-k"):
        with ResumableCsv(out, csv_fields(3)):
            pass
    with ResumableCsv(out, csv_fields(1)):
        with pytest.raises(CsvSinkError, match="another process is writing"):
            with ResumableCsv(out, csv_fields(1)):
                pass


def test_shards_split_the_images_once_each(trained_run, photos, tmp_path):
    predictor = Predictor(trained_run, device="cpu")
    parts = [tmp_path / f"part{i}.csv" for i in range(3)]
    for i, part in enumerate(parts):
        predict_folder(predictor, [photos], part, top_k=1, shard=(i, 3))
    paths = [r["path"] for part in parts for r in rows_of(part)]
    assert sorted(paths) == sorted(e.path for e in walk([photos]))
    assert all(rows_of(part) for part in parts)  # 25 paths spread over every part
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_walk_keeps_to_the_folder_and_a_stable_order(photos, tmp_path):
    outside = write_dataset(tmp_path / "outside", num_classes=1, per_class=2)
    os.symlink(outside, photos / "link")
    first = [e.path for e in walk([photos])]
    assert first == [e.path for e in walk([photos])]
    assert not any("outside" in p or "/link/" in p for p in first)
    assert not any(".DS_Store" in p or p.endswith(".txt") for p in first)


def test_the_progress_total_is_what_gets_written_as_photos_arrive(trained_run, photos, tmp_path):
    """One walk lists the work: a photo that lands mid-run waits for the next run, so the bar
    never runs past 100% (with a counting walk and a second working walk it did)."""
    out = tmp_path / "out.csv"
    predictor = Predictor(trained_run, device="cpu", batch_size=4)
    seen: list[tuple[int, int]] = []

    def progress(s):
        if not seen:
            late = (photos / "red" / "red_00.png").read_bytes()
            (photos / "red" / "zz_late.png").write_bytes(late)
        seen.append((s.written, s.total))

    summary = predict_folder(predictor, [photos], out, top_k=1, on_progress=progress)
    assert all(written <= total for written, total in seen)
    assert summary.written == summary.total == 25
    again = predict_folder(predictor, [photos], out, top_k=1)
    assert again.written == 1 and again.already_done == 25
    assert rows_of(out)[-1]["path"].endswith("zz_late.png")


def test_an_unlistable_folder_gets_a_row_that_says_why(trained_run, photos, tmp_path, monkeypatch):
    import modelkit.data.walk as walk_module

    real = os.scandir

    def scandir(path):  # as root, chmod cannot refuse a listing: refuse it here
        if os.path.basename(path) == "green":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(walk_module.os, "scandir", scandir)
    out = tmp_path / "out.csv"
    summary = predict_folder(Predictor(trained_run, device="cpu"), [photos], out, top_k=1)
    rows = rows_of(out)
    refused = [r for r in rows if r["path"] == str(photos / "green")]
    assert refused and "cannot list the folder: Permission denied" in refused[0]["error"]
    assert not any("/green/" in r["path"] for r in rows)
    assert summary.written == len(rows) == 1 + 8 + 9


def test_cli_names_what_a_folder_needs(trained_run, photos, capsys):
    code = main(["predict", str(trained_run), str(photos)])
    assert code == 2 and "add --csv" in capsys.readouterr().err
    code = main(["predict", str(trained_run), str(photos), "--csv", "x.csv", "--shard", "4/4"])
    assert code == 2 and "--shard '4/4'" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_minus_nine_then_the_same_command_gives_each_image_once(trained_run, tmp_path):
    photos = write_dataset(tmp_path / "many", num_classes=3, per_class=70, seed=5)
    out = tmp_path / "out.csv"
    cmd = [sys.executable, "-m", "modelkit", "predict", str(trained_run), str(photos)]
    cmd += ["--csv", str(out), "--batch-size", "1", "--device", "cpu", "--top-k", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text(encoding="utf-8").count("\n") > 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = rows_of(out)
    assert 0 < len(interrupted) < 210, "the kill should land mid-way"
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(interrupted)} were there from an earlier run" in rerun.stderr
    paths = [r["path"] for r in rows_of(out)]
    assert len(paths) == len(set(paths)) == 210


@pytest.mark.slow
def test_the_benchmark_reports_each_figure_with_accuracy_and_the_kill_check(trained_run, tmp_path):
    source = write_dataset(tmp_path / "source", num_classes=3, per_class=6, seed=7)
    out = tmp_path / "folder.json"
    script = REPO / "benchmarks" / "bench_folder_predict.py"
    args = ["--run", str(trained_run), "--source", str(source), "--images", "64"]
    done = subprocess.run(
        [sys.executable, str(script), *args, "--naive-images", "32", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["images"] == result["rows"] == 64 and result["unreadable"] == 0
    for rate in (
        "backend_batch32_images_per_s",
        "naive_loop_images_per_s",
        "streamed_images_per_s",
    ):
        assert result[rate] > 0
    assert 0 <= result["streamed_accuracy"] <= 1 and 0 <= result["naive_loop_accuracy"] <= 1
    assert result["overlapped_images_per_s"] > 0
    assert result["overlapped_accuracy"] == result["streamed_accuracy"]
    assert result["rss_mb"]["peak"] >= result["rss_mb"]["first"] > 0
    assert result["kill_and_rerun"]["rows_after_rerun"] == 64
    assert result["kill_and_rerun"]["each_image_once"] is True
