"""Nothing let in: a dataset with every kind of bad file still scans, reports and trains, the bad
files named with a reason; unsafe checkpoints and tampered configs are refused with a message."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modelkit.cli.main import main
from modelkit.config import ConfigError, TrainConfig
from modelkit.data.archive import ArchiveError, extract_dataset_zip
from modelkit.data.report import build_report, format_report
from modelkit.data.scan import scan_dataset
from modelkit.evaluation.metrics import load_evaluation
from modelkit.events import Message
from modelkit.models.checkpoint import CheckpointError
from modelkit.runs.store import RunStore, read_metrics
from modelkit.serving.predictor import Predictor
from modelkit.training.loop import Trainer

LONG_NAME = "l" * 251 + ".png"  # 255 bytes: the longest name ext4 allows


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels in a few dozen bytes (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def write_hostile_dataset(root: Path, helpers) -> dict[str, str]:
    """Two good classes plus one of every bad thing; returns {bad file: expected reason}."""
    helpers.write_dataset(root, num_classes=2, per_class=8, seed=2)
    red, green = root / "red", root / "green"
    good = (red / "red_00.png").read_bytes()
    bad = {
        "red/truncated.png": good[: len(good) // 2],
        "red/empty.jpg": b"",
        "red/notes.jpg": b"this is a text file named like a photo\n",
        "green/bomb.png": png_header_only(40_000, 40_000),
        "green/huge.png": png_header_only(15_000, 12_000),
    }
    for name, data in bad.items():
        (root / name).write_bytes(data)
    with open(os.path.join(os.fsencode(green), b"bro\xffken.jpg"), "wb") as f:
        f.write(b"GIF89a")  # not UTF-8 in its name, nor an image inside
    # readable oddities that must train: 16-bit grey, CMYK, non-UTF-8 and 255-byte names
    Image.fromarray(np.full((40, 40), 40_000, np.uint16)).save(red / "deep16.png")
    Image.new("CMYK", (40, 40), (0, 200, 200, 0)).save(green / "cmyk.jpg")
    with open(os.path.join(os.fsencode(red), b"caf\xe9.png"), "wb") as f:
        f.write(good)
    (green / LONG_NAME).write_bytes((green / "green_00.png").read_bytes())
    # clutter and traps: hidden and system files, a symlink loop, a dangling link
    (red / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (green / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (red / "._red_00.png").write_bytes(b"\x00\x05\x16\x07")
    os.symlink(red, red / "loop")
    os.symlink(root / "nowhere.png", green / "dangling.png")
    return {
        "truncated.png": "truncated or corrupt",
        "empty.jpg": "empty file (0 bytes)",
        "notes.jpg": "not an image",
        "bomb.png": "too large",
        "huge.png": "too large",
        "bro\udcffken.jpg": "not an image",
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, helpers) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile") / "data"
    return root, write_hostile_dataset(root, helpers)


def test_scan_and_report_name_every_bad_file(hostile):
    root, reasons = hostile
    index = scan_dataset(root, val_ratio=0.25)
    names = {os.path.basename(s.path) for _, s in index.all_samples()}
    assert set(reasons) <= names  # scanning looks at names only; decoding judges them
    assert {"deep16.png", "cmyk.jpg", LONG_NAME} <= names
    assert "caf\udce9.png" in names  # the undecodable byte survives as a surrogate
    ignored = {os.path.basename(p) for p in index.ignored}
    assert {".DS_Store", "Thumbs.db", "._red_00.png", "dangling.png"} <= ignored
    assert not any("/loop/" in s.path for _, s in index.all_samples())

    report = build_report(index)
    found = {os.path.basename(u["path"]): u["reason"] for u in report.unreadable}
    assert set(found) == set(reasons)
    for name, reason in reasons.items():
        assert reason in found[name], (name, found[name])
    text = format_report(report)  # prints, non-UTF-8 name included
    assert all(name in text for name in reasons if name.isascii())
    assert "bro\\xffken.jpg" in text  # the byte that is not UTF-8, shown as an escape
    json.dumps(report.to_dict())  # the --json output


@pytest.mark.slow
def test_a_hostile_dataset_trains_and_skips_the_bad_files_by_name(hostile, tmp_path, helpers):
    root, reasons = hostile
    messages: list[Message] = []
    cfg = helpers.fast_config(root, tmp_path / "runs", epochs=1, val_ratio=0.25)
    result = Trainer(cfg, [lambda e: messages.append(e) if isinstance(e, Message) else None]).fit()
    assert result.state == "finished"
    warnings = [m.text for m in messages if m.level == "warning"]
    for name, reason in reasons.items():
        assert any(name in w and reason in w for w in warnings), (name, warnings)
    assert len(warnings) == len(reasons)
    log = (result.run_dir / "log.txt").read_text(encoding="utf-8")
    assert log.count(f"skipped {root}") == len(reasons) and "bro\\udcffken.jpg" in log
    assert len(read_metrics(result.run_dir)) == 1
    (info,) = RunStore(tmp_path / "runs").list()
    assert info.state == "finished"
    ev = load_evaluation(result.run_dir, "val")
    assert ev is not None and ev.predictions


def test_unreadable_file_is_named_in_report_and_cache(tmp_path, helpers, monkeypatch):
    """chmod 000 does not stop root, so the refusal comes from a patched os.open (the one
    bounded reader, modelkit.paths.read_untrusted, opens every image file)."""
    import os

    from modelkit.data.cache import ImageCache

    root = helpers.write_dataset(tmp_path / "data", num_classes=2, per_class=3)
    locked = str(root / "red" / "red_01.png")
    real_open = os.open

    def guarded_open(file, *args, **kwargs):
        if str(file) == locked:
            raise PermissionError(13, "Permission denied", file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    index = scan_dataset(root, val_ratio=0)
    rep = build_report(index)
    assert rep.unreadable == [{"path": locked, "reason": "permission denied"}]
    paths = [s.path for _, s in index.all_samples()]
    cached = ImageCache(paths, 32, store=None)
    assert cached.errors == [(locked, "permission denied")]
    assert cached.valid.sum() == len(paths) - 1


def test_evaluation_files_keep_non_utf8_paths(tmp_path):
    from modelkit.evaluation.metrics import evaluate_logits, save_evaluation

    path = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9.png"))
    ev = evaluate_logits(torch.tensor([[2.0, 0.0]]), torch.tensor([0]), ["a", "b"], [path], "val")
    save_evaluation(tmp_path, ev)
    loaded = load_evaluation(tmp_path, "val")
    assert [row["path"] for row in loaded.predictions] == [path]


# -- checkpoints that are not ours, damaged, or would run code -------------------------------------
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize(
    "kind, message",
    [
        ("evil", "refused to load"),
        ("corrupt", "damaged or not a PyTorch file"),
        ("foreign", "not a modelkit checkpoint"),
        ("text", "damaged or not a PyTorch file"),
    ],
)
def test_predictor_and_cli_refuse_bad_checkpoints(tmp_path, capsys, kind, message, png_file):
    path = tmp_path / "best.pt"
    if kind == "evil":
        torch.save({"model": Evil()}, path)
    elif kind == "corrupt":
        buf = io.BytesIO()
        torch.save({"model": {"w": torch.zeros(64, 64)}}, buf)
        path.write_bytes(buf.getvalue()[: buf.tell() // 3])
    elif kind == "foreign":
        torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    else:
        path.write_text("<html>404 not found</html>")
    with pytest.raises(CheckpointError, match=message) as info:
        Predictor(path)
    assert str(path) in str(info.value)
    code = main(["predict", str(path), str(png_file)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and message in err[0]


@pytest.fixture
def png_file(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (20, 20), (200, 30, 30)).save(path)
    return path


# -- configs with wrong types ----------------------------------------------------------------------
def test_config_json_with_wrong_types_is_refused_naming_the_fields(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"epochs": "ten", "lr": [0.1], "hflip": "yes", "arch": 18}))
    with pytest.raises(ConfigError) as info:
        TrainConfig.load(path)
    text = str(info.value)
    for field in ("epochs", "lr", "hflip", "arch"):
        assert field in text


def test_resume_of_a_run_with_a_tampered_config(trained_run, tmp_path, capsys):
    run = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, run)
    config = json.loads((run / "config.json").read_text())
    config.update(batch_size="32", epochs=-3)
    (run / "config.json").write_text(json.dumps(config))
    code = main(["train", "--resume", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: ") and "batch_size" in err[0] and "epochs" in err[0]

    (run / "config.json").write_text("[1, 2")  # not even JSON
    assert main(["train", "--resume", str(run)]) == 1
    assert "cannot read config" in capsys.readouterr().err
    (info,) = RunStore(tmp_path / "runs").list()  # the run still lists
    assert info.id == run.name


# -- zips ------------------------------------------------------------------------------------------
def test_zip_with_traversal_and_extreme_ratio_is_refused(tmp_path):
    dest = tmp_path / "out"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data/cat/ok.png", b"fine")
        zf.writestr("data/../../../etc/cron.d/evil", b"* * * * * root sh")
    with pytest.raises(ArchiveError, match="outside the archive"):
        extract_dataset_zip(buf.getvalue(), dest)
    assert not dest.exists() or not any(dest.iterdir())

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/cat/zeros.png", b"\0" * (64 * 1024 * 1024))  # ~1000x
    assert len(buf.getvalue()) < 200_000
    with pytest.raises(ArchiveError, match="zip bomb"):
        extract_dataset_zip(buf.getvalue(), dest)
    assert not dest.exists() or not any(dest.iterdir())
