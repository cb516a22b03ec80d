"""Data-parallel training: the helpers without a process group, and a real 2-process gloo run
under torchrun compared with one process on the same global batch and seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modelkit.training.distributed import Distributed, init_from_env


def test_a_plain_process_is_rank_0_of_1_and_communicates_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    d = init_from_env(torch.device("cpu"), batch_size=1)
    assert (d.rank, d.world, d.enabled, d.is_main) == (0, 1, False, True)
    batch = np.arange(5)
    assert d.shard(batch)[0] is batch
    assert d.loss_weight(5, 5) == 1.0
    assert d.all_reduce_sum(1, 2.5) == [1.0, 2.5]
    assert d.mean(3.0) == 3.0 and d.any(True) and not d.any(False)
    assert d.broadcast({"a": 1}) == {"a": 1}
    assert d.shard(batch)[1] is None  # one process: augmentation unchanged
    model = torch.nn.Linear(2, 2)
    assert d.wrap(model) is model
    assert d.min_last_batch() == 2  # same rule as before: only a last batch of one is dropped


def test_ranks_split_the_global_batch_and_weight_their_loss_to_the_global_mean():
    batch = np.arange(7)
    ranks = [Distributed(rank=r, world=2) for r in range(2)]
    shards = [d.shard(batch) for d in ranks]
    assert [(p.tolist(), part) for p, part in shards] == [
        ([0, 1, 2, 3], (0, 7)),
        ([4, 5, 6], (4, 7)),
    ]
    # DDP averages gradients over ranks: mean_r(w_r * mean loss_r) must be the global mean
    losses = np.random.default_rng(0).random(7)
    ddp = np.mean([d.loss_weight(len(p), 7) * losses[p].mean() for d, (p, _) in zip(ranks, shards)])
    assert ddp == pytest.approx(losses.mean())
    assert ranks[0].min_last_batch() == 4


def test_each_part_of_a_global_batch_gets_the_augmentation_one_process_gives_it():
    from modelkit.data.augment import AugmentSettings, train_batch

    settings = AugmentSettings(rotation=20, brightness=0.3, contrast=0.3, hue=0.1)
    images = torch.randint(0, 256, (7, 40, 40, 3), dtype=torch.uint8)
    g = torch.Generator().manual_seed(3)
    whole = train_batch(images, 32, settings, g)
    parts = []
    for d in (Distributed(rank=r, world=2) for r in range(2)):
        g_rank = torch.Generator().manual_seed(3)  # every rank holds the same generator
        rows, part = d.shard(np.arange(7))
        parts.append(train_batch(images[rows], 32, settings, g_rank, part=part))
        assert torch.equal(g_rank.get_state(), g.get_state())  # ranks' generators stay in step
    assert torch.allclose(torch.cat(parts), whole, atol=1e-6)


def test_too_small_a_global_batch_is_refused(monkeypatch):
    from modelkit.config import ConfigError

    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match="global batch of 4 processes"):
        init_from_env(torch.device("cpu"), batch_size=6)


def _float_tensors(path: Path) -> dict[str, torch.Tensor]:
    model = torch.load(path, weights_only=True)["model"]
    return {k: v for k, v in model.items() if v.is_floating_point()}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_gloo_processes_train_like_one_process_with_the_same_global_batch(
    tmp_path, image_dataset, helpers
):
    """Exact comparison needs BatchNorm out of the way: each rank normalises its half batch with
    its own statistics (no SyncBatchNorm on the CPU), which changes every gradient after the
    first step, so full fine-tuning of a ResNet agrees only loosely. With the backbone frozen
    (its BatchNorm in eval mode) but run through the full loop (no feature cache), DDP must
    reproduce the single process, random augmentation included: same global batches and
    augmentation draws split over the ranks, gradient averaged to the global mean, same global
    metrics. Differences are float summation order only (measured ~1e-7)."""
    settings = dict(freeze_backbone=True, feature_cache=False, lr=0.05, rotation=10.0)
    from modelkit.training.loop import Trainer

    single = Trainer(helpers.fast_config(image_dataset, tmp_path / "single", **settings)).fit()
    flags = [
        "--weights", "none", "--image-size", "32", "--batch-size", "8", "--epochs", "2",
        "--precision", "fp32", "--device", "cpu", "--lr", "0.05", "--freeze-backbone", "true",
        "--feature-cache", "false", "--rotation", "10",
    ]  # fmt: skip
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "modelkit", "train", str(image_dataset), *flags, "--runs-dir", str(tmp_path / "ddp"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # only rank 0 prints the run folder
    ddp_dir = Path(lines[0])
    assert [p.name for p in (tmp_path / "ddp").iterdir()] == [ddp_dir.name]  # one folder
    assert "distributed: 2 processes (gloo), global batch 8" in (ddp_dir / "log.txt").read_text()

    ours, theirs = (
        _float_tensors(ddp_dir / "checkpoints" / "last.pt"),
        _float_tensors(single.run_dir / "checkpoints" / "last.pt"),
    )
    assert ours.keys() == theirs.keys()  # saved from the unwrapped module: no "module." prefix
    worst = max(float((ours[k] - theirs[k]).abs().max()) for k in ours)
    assert worst < 1e-5, worst
    rows = [json.loads(x) for x in (ddp_dir / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (single.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == len(ref) == 2
    for a, b in zip(rows, ref):  # global numbers: all ranks' images, not rank 0's half
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert a[key] == pytest.approx(b[key], abs=1e-4), key
    # the single-device Predictor loads the DDP checkpoint as it is
    from modelkit.serving.predictor import Predictor

    assert Predictor(ddp_dir, device="cpu").classes == ["blue", "green", "red"]
