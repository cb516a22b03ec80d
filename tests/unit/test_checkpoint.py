"""Checkpoints: atomic writes, and loading that never runs code and names what is wrong."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from modelkit.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from modelkit.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    require_modelkit,
    save_checkpoint,
)


@pytest.fixture(autouse=True)
def _quiet_protocol_warnings():
    # torch warns about pickle protocols it does not expect when reading hostile files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def test_atomic_writes_replace_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_json(tmp_path / "j.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": [1, 2], "b": 1}
    save_checkpoint(tmp_path / "sub" / "ck.pt", {"model": {"w": torch.ones(2)}})
    names = sorted(p.name for p in tmp_path.rglob("*"))
    assert names == ["ck.pt", "file.bin", "j.json", "sub", "t.txt"]


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "ck.pt"
    target.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_round_trip_is_weights_only(tmp_path):
    path = tmp_path / "ck.pt"
    payload = {
        "model": {"w": torch.arange(4.0)},
        "classes": ["a", "b"],
        "epoch": 3,
        "metrics": {"val_acc": 0.5},
        "nothing": None,
    }
    save_checkpoint(path, payload)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "modelkit" and raw["format_version"] == 1
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert loaded["classes"] == ["a", "b"] and loaded["epoch"] == 3 and loaded["nothing"] is None


class _RunsCode:
    """Unpickling this calls os.makedirs(target): visible proof that code ran."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


class _Custom:
    def __init__(self):
        self.x = 1


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(1)}, "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not marker.exists()
    message = str(info.value)
    assert message.startswith(str(path)) and "refused" in message and "makedirs" in message


def test_custom_class_is_refused(tmp_path):
    path = tmp_path / "custom.pt"
    torch.save({"obj": _Custom()}, path)
    with pytest.raises(CheckpointError, match="refused.*_Custom"):
        load_checkpoint(path)


def test_os_system_is_refused(tmp_path):
    class Shell:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'shell-ran'}",))

    path = tmp_path / "shell.pt"
    torch.save([Shell()], path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not (tmp_path / "shell-ran").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"this is a text file, not a checkpoint",
        bytes(range(256)) * 4,
        b"PK\x03\x04" + b"\x00" * 100,
    ],
    ids=["text", "binary", "bad-zip"],
)
def test_corrupt_file_is_damaged_not_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "damaged or not a PyTorch file" in str(info.value)
    assert str(path) in str(info.value)


def test_truncated_checkpoint_is_damaged(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"model": {"w": torch.randn(100, 100)}})
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="damaged"):
            load_checkpoint(path)


def test_garbage_never_escapes_as_another_error(tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save({"a": torch.ones(3)}, legacy, _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    path = tmp_path / "cut.pt"
    for cut in range(1, len(data), max(1, len(data) // 60)):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            load_checkpoint(path)


def test_zero_byte_and_missing_files(tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path)  # a folder is not a checkpoint file


@pytest.mark.parametrize("obj", [torch.ones(3), [1, 2, 3], "text", 5], ids=type)
def test_non_dict_payload(tmp_path, obj):
    path = tmp_path / "x.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=f"not a checkpoint \\(holds a {type(obj).__name__}"):
        load_checkpoint(path)


def test_plain_state_dict_loads_but_is_not_modelkit(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    payload = load_checkpoint(path)
    assert set(payload) == {"weight", "bias"}
    with pytest.raises(CheckpointError, match="not a modelkit checkpoint.*--weights"):
        require_modelkit(payload, path)


def test_require_modelkit_names_missing_keys(tmp_path):
    path = Path(tmp_path / "ck.pt")
    save_checkpoint(path, {"model": {}, "arch": "resnet18", "classes": ["a"], "config": {}})
    payload = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="missing 'preprocess'"):
        require_modelkit(payload, path)
    payload["preprocess"] = {"image_size": 32}
    assert require_modelkit(payload, path) is payload
