"""Data-parallel training under ``torchrun``: the handful of helpers the Trainer calls.

``torchrun --nproc_per_node=N -m modelkit train DATA …`` starts N copies of the CLI; each reads
RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT from the environment (torchrun's
rendezvous options, multi-node included, only change those) and this module joins them into one
process group: gloo on the CPU, nccl on CUDA with one GPU per process (``cuda:LOCAL_RANK``).

How the engine's loop (no DataLoader) becomes data parallel:

- Every rank decodes the whole dataset into its own ImageCache (the rows of a batch are drawn
  globally, so each rank may need any row); ``cache_ram_mb`` is a per-process budget.
- Every rank draws the SAME permutation per epoch from the same seeded generator and takes its
  contiguous part of each global batch (``shard``): ``batch_size`` is the global batch, each rank
  sees ``batch_size // world`` images (one more on the first ranks when it does not divide). This
  is what DistributedSampler does for a DataLoader.
- Each rank's loss is weighted by its share of the batch (``loss_weight``) so that DDP's gradient
  average is exactly the gradient of the global-batch mean, even when shards differ by one image.
- Every rank draws the augmentation numbers of the whole global batch from that same generator
  and applies its own rows' (``augment.train_batch(part=...)``): each image gets exactly the
  augmentation a single process would give it, the generator stays identical on every rank, and
  a resumed run draws the same numbers.
- BatchNorm normalises with each rank's own shard statistics (no SyncBatchNorm: gloo on the CPU
  does not support it), so results differ slightly from one process with the same global batch.
- The frozen-backbone feature cache is off under torchrun: the head trains through the full
  loop (backbone BatchNorm frozen), so DDP synchronises its gradients like any other.
- Only rank 0 creates the run folder (its path is broadcast), records events, validates,
  writes checkpoints (of the unwrapped module, so they load on a single device) and evaluates.
  Validation metrics are broadcast from rank 0, so the scheduler, best tracking and early
  stopping decide the same on every rank; stop requests are OR-ed across ranks every batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from modelkit.errors import ModelkitError


class DistributedError(ModelkitError, RuntimeError):
    """The distributed environment cannot be used as asked; the message says why."""


def world_size_from_env() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def gpu_count() -> int:
    """CUDA GPUs visible to this process (the app offers torchrun when there are several)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def is_main_process() -> bool:
    """True in a plain process and on rank 0 of a torchrun job (before or after init)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return os.environ.get("RANK", "0") in ("", "0")


@dataclass
class Distributed:
    """Where this process stands in the job; a plain process is rank 0 of a world of 1, and
    then every helper is a no-op that communicates nothing."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str = ""
    _wrapped: tuple | None = field(default=None, init=False, repr=False)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- data ---------------------------------------------------------------------------------
    def part(self, total: int) -> tuple[int, int] | None:
        """(offset, total) of this rank's contiguous part of a global batch of ``total`` (sizes
        differ by at most one); None in a single process."""
        if not self.enabled:
            return None
        base, extra = divmod(total, self.world)
        return self.rank * base + min(self.rank, extra), total

    def shard(self, batch: np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
        """This rank's rows of a global batch and their ``part`` (for ``train_batch``); the
        whole batch and None in a single process."""
        part = self.part(len(batch))
        if part is None:
            return batch, None
        size = len(batch) // self.world + (self.rank < len(batch) % self.world)
        return batch[part[0] : part[0] + size], part

    def loss_weight(self, local: int, total: int) -> float:
        """Scale for this rank's mean loss so DDP's gradient average equals the global mean."""
        if not self.enabled or total == 0:
            return 1.0
        return local * self.world / total

    def min_last_batch(self) -> int:
        """A last global batch smaller than this is dropped (seen next epoch): every rank needs
        at least two images, or BatchNorm fails on a batch of one."""
        return 2 * self.world

    # -- communication ------------------------------------------------------------------------
    def all_reduce_sum(self, *values: float) -> list[float]:
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def mean(self, value: float) -> float:
        """Mean over ranks of a per-rank number (the weighted batch loss: its global mean)."""
        if not self.enabled:
            return value
        return self.all_reduce_sum(value)[0] / self.world

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on any (stop requests, early stopping)."""
        if not self.enabled:
            return bool(flag)
        return self.all_reduce_sum(1.0 if flag else 0.0)[0] > 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (the run folder, validation metrics)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def wrap(self, model: nn.Module, compile: bool = False) -> nn.Module:
        """DistributedDataParallel around ``model`` (which stays the module checkpoints save).

        DDP fixes the set of parameters it synchronises when it is built, so it is built again
        whenever that set changes (a two-phase run unfreezing its backbone); else reused."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        key = (id(model), compile, tuple(p.requires_grad for p in model.parameters()))
        if self._wrapped is None or self._wrapped[0] != key:
            ids = [self.local_rank] if self.device.type == "cuda" else None
            ddp: nn.Module = DistributedDataParallel(model, device_ids=ids)
            self._wrapped = (key, torch.compile(ddp) if compile else ddp)
        return self._wrapped[1]

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def describe(self, batch_size: int) -> str:
        per = batch_size // self.world
        return (
            f"distributed: {self.world} processes ({self.backend}), global batch {batch_size}, "
            f"{per}{'+' if batch_size % self.world else ''} images per process"
        )


def init_from_env(device: torch.device, batch_size: int) -> Distributed:
    """Join the torchrun job described by the environment; a plain process gets a world of 1.

    ``device`` is what the config asked for: on CUDA each process takes ``cuda:LOCAL_RANK`` and
    nccl, on the CPU gloo. The process group is created once per process and reused."""
    world = world_size_from_env()
    if world <= 1:
        return Distributed(device=device)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible; "
                "start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise DistributedError(
            f"distributed training runs on CUDA (nccl) or the CPU (gloo), not on {device.type}"
        )
    if batch_size < 2 * world:
        from modelkit.config import ConfigError

        raise ConfigError(
            f"batch_size: {batch_size} is the global batch of {world} processes; it must be at "
            f"least {2 * world} (two images per process)"
        )
    if not dist.is_initialized():
        dist.init_process_group(backend)  # env:// from torchrun: MASTER_ADDR, MASTER_PORT, ...
    return Distributed(rank, world, local_rank, device, backend)
