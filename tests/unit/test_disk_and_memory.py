"""Disk full, an unwritable runs folder and out of memory: one clear message, a clean stop, and
the checkpoints written before the failure still load."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest
import torch
import torchvision

from modelkit.cli.main import main
from modelkit.data import cache as cache_module
from modelkit.data.cache import CacheBudgetError, ImageCache
from modelkit.models import checkpoint as checkpoint_module
from modelkit.models.checkpoint import load_checkpoint
from modelkit.runs.store import RunStore, load_run, read_metrics
from modelkit.training import loop as engine
from modelkit.training import setup
from modelkit.training.loop import Trainer, TrainingError


@pytest.fixture(scope="module")
def data(tmp_path_factory, helpers) -> Path:
    base = tmp_path_factory.mktemp("disk_data")
    return helpers.write_dataset(base / "data", num_classes=2, per_class=6, seed=5)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# -- an unwritable runs folder ---------------------------------------------------------------------
def test_runs_folder_under_a_file_fails_before_training(data, tmp_path, helpers, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    runs = blocker / "runs"  # cannot exist, even for root (chmod would not stop root)
    with pytest.raises(TrainingError, match="cannot create the runs folder .*file.txt/runs"):
        Trainer(helpers.fast_config(data, runs)).fit()

    argv = ["train", data, "--weights", "none", "--image-size", "32", "--device", "cpu"]
    code = main([*map(str, argv), "--runs-dir", str(runs)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 1
    assert "cannot create the runs folder" in line and "file.txt/runs" in line
    assert "Not a directory" in line
    assert blocker.read_text() == "not a folder"


def test_unwritable_run_folder_is_explained(monkeypatch):
    exc = PermissionError(errno.EACCES, "Permission denied", "/srv/runs/x/config.json")
    assert engine.explain_error(exc) == "cannot write to /srv/runs/x/config.json: Permission denied"


# -- disk full in the middle of a run --------------------------------------------------------------
def _epoch_of(checkpoint_bytes: bytes) -> int:
    return int(torch.load(io.BytesIO(checkpoint_bytes), weights_only=True).get("epoch", 0))


def _disk_full_from_epoch(monkeypatch, epoch: int) -> list[str]:
    """Checkpoint writes of ``epoch`` (1-based) and later fail with ENOSPC, as on a full disk."""
    real = checkpoint_module.atomic_write_bytes
    refused: list[str] = []

    def write(path, data):
        if str(path).endswith(".pt") and _epoch_of(data) >= epoch:
            refused.append(str(path))
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", write)
    return refused


@pytest.mark.slow
def test_disk_full_on_the_second_epoch_stops_cleanly(data, tmp_path, monkeypatch, capsys):
    refused = _disk_full_from_epoch(monkeypatch, 2)
    runs = tmp_path / "runs"
    argv = [
        "train", data, "--weights", "none", "--image-size", "32", "--batch-size", "8",
        "--precision", "fp32", "--device", "cpu", "--epochs", "2", "--runs-dir", runs,
    ]  # fmt: skip
    code = main([str(a) for a in argv])
    line = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert code == 1
    assert line.startswith("error: training failed: the disk is full (")
    assert "free some space and resume" in line, line
    assert refused and refused[0].endswith(".pt")

    (info,) = RunStore(runs).list()
    assert info.state == "failed" and "disk is full" in info.error
    assert info.resumable
    for name in ("best.pt", "last.pt"):  # epoch 1's checkpoints survive, whole
        assert load_checkpoint(info.path / "checkpoints" / name)["epoch"] == 1
    assert not list((info.path / "checkpoints").glob("*.tmp"))
    assert [r["epoch"] for r in read_metrics(info.path)] == [1]

    monkeypatch.undo()  # space freed: the run resumes from epoch 1's last.pt and finishes
    assert main(["train", "--resume", str(info.path)]) == 0
    assert load_run(info.path).state == "finished"
    assert load_checkpoint(info.path / "checkpoints" / "last.pt")["epoch"] == 2


# -- out of memory ---------------------------------------------------------------------------------
def test_cuda_out_of_memory_in_forward_suggests_smaller_batch(data, tmp_path, monkeypatch, helpers):
    def forward(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(torchvision.models.resnet.ResNet, "forward", forward)
    trainer = Trainer(helpers.fast_config(data, tmp_path / "runs", epochs=1))
    with pytest.raises(TrainingError) as info:
        trainer.fit()
    message = str(info.value)
    assert message.startswith("out of memory (CUDA out of memory. Tried to allocate 2.00 GiB)")
    assert "smaller batch size or image size" in message
    assert load_run(trainer.run_dir).state == "failed"


def test_the_cpu_allocators_own_error_is_one_out_of_memory_line(data, tmp_path, monkeypatch,
                                                                 helpers, capsys):  # fmt: skip
    """On the CPU, a batch too big for the machine's memory fails in PyTorch's allocator, whose
    words ("[enforce fail at alloc_cpu.cpp] ... DefaultCPUAllocator: can't allocate memory")
    never say "out of memory" and reached the person raw."""

    def forward(self, x):
        return torch.empty(2**62, dtype=torch.uint8)  # the allocator's real refusal

    monkeypatch.setattr(torchvision.models.resnet.ResNet, "forward", forward)
    trainer = Trainer(helpers.fast_config(data, tmp_path / "runs", epochs=1))
    with pytest.raises(TrainingError) as info:
        trainer.fit()
    message = str(info.value)
    assert message.startswith("out of memory (tried to allocate 4,194,304.0 TiB)")
    assert "smaller batch size or image size" in message
    assert "enforce" not in message and "Allocator" not in message
    argv = ["train", str(data), "--runs-dir", str(tmp_path / "runs"), "--weights", "none",
            "--image-size", "32", "--epochs", "1", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: training failed: out of memory (tried to allocate")


def test_memory_error_while_caching_suggests_smaller_images(data, tmp_path, monkeypatch, helpers):
    def no_ram(*args, **kwargs):
        raise MemoryError("Unable to allocate 37.5 GiB for an array with shape (200000, 256)")

    monkeypatch.setattr(setup, "ImageCache", no_ram)  # the run's set-up decodes the images
    with pytest.raises(TrainingError, match=r"^out of memory \(Unable to allocate 37.5 GiB"):
        Trainer(helpers.fast_config(data, tmp_path / "runs", epochs=1)).fit()
    assert engine.explain_error(MemoryError()) == (
        "out of memory; try a smaller batch size or image size"
    )


def test_cache_over_ram_budget_and_disk_is_refused_with_advice(data, tmp_path, monkeypatch):
    paths = [str(p) for p in sorted(data.rglob("*.png"))]
    monkeypatch.setattr(cache_module, "_free_bytes", lambda folder: 1024)  # a full /tmp
    with pytest.raises(CacheBudgetError, match="smaller image size") as info:
        ImageCache(paths, 64, ram_budget_mb=0, spill_dir=tmp_path, store=None)
    assert isinstance(info.value, MemoryError)
    assert not list(tmp_path.iterdir())  # no cache file left behind

    from modelkit.config import TrainConfig

    cfg = TrainConfig(
        data_dir=str(data), runs_dir=str(tmp_path / "runs"), weights="none", image_size=32,
        epochs=1, device="cpu", precision="fp32", cache_ram_mb=0,
    )  # fmt: skip
    with pytest.raises(TrainingError, match="out of memory .*decode cache needs") as err:
        Trainer(cfg).fit()
    assert "smaller image size" in str(err.value)
