"""The frozen stages' maps of one run (or its frozen backbone's features) kept for the next in
this process, while a caller asks (``keeping_stage_maps``). ``auto``'s longer and continued runs
train the same frozen stages on the same images as its winner, and computing the maps again was
most of their time: a continued run on cifar10_small spent 31 s of its 33 s on them and ran 2 of
the 9 epochs it asked for (benchmarks/results/suite_continue_lr10_cpu2.json); a head-only
winner's longer run gave up for the ~50 s its features would take again (issue #26). Kept only
while asked, and one run's at a time: a long-lived app process must not hold gigabytes of maps
between unrelated runs.

A run reuses the maps only when everything that made them is the same: the frozen stages'
weights (hashed), the files of every split in order, the image and evaluation sizes, the views
(augmentation settings, passes asked, test-time views, layout, precision, device) and the seed
whose generator drew the random passes; that generator is kept with them, so a later pass
continues where the kept ones stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where maps are made, not by the command line's start
    import torch

    from modelkit.training.features import CachedFeatures

_lock = threading.Lock()
_keepers = 0  # callers inside keeping_stage_maps()
_kept: tuple[str, KeptMaps] | None = None  # (what made them, the maps)


@dataclass
class KeptMaps:
    """A run's maps: the evaluation splits', the training passes computed so far (the list the
    run appends to), how many passes it uses, the generator of its random passes and the
    seconds they took."""

    splits: dict[str, torch.Tensor]
    passes: int
    train_passes: list[torch.Tensor]
    generator: torch.Generator
    seconds: float = 0.0  # what computing them took: what a run reusing them does not pay
    pass_seconds: float = 0.0  # what the latest training pass took: what a next one will

    def spent(self, seconds: float) -> None:
        """Count a training pass computed after the first: into the maps' cost, and as what
        the next pass is expected to take."""
        self.seconds += seconds
        self.pass_seconds = seconds

    def computed(self, key: str, cache: CachedFeatures, seconds: float) -> None:
        """``cache`` was computed in ``seconds`` (its first pass included): its outputs are
        these maps, kept under ``key`` where a caller asked (``key`` empty: not kept)."""
        self.splits, self.train_passes = cache.splits, cache.train_passes
        self.seconds, self.pass_seconds = seconds, cache.pass_seconds
        if key:
            keep(key, self)

    def reused_by(self, cache: CachedFeatures) -> CachedFeatures:
        """``cache`` (made over these evaluation outputs) trains on the passes kept, and the
        passes it computes from now on are kept too."""
        cache.train_passes, cache.pass_seconds = self.train_passes, self.pass_seconds
        return cache


@contextlib.contextmanager
def keeping_stage_maps(asked: bool = True) -> Iterator[None]:
    """Keep the latest run's stage maps for the next run with the same ones, until the last
    caller inside this block leaves it (nothing kept where not ``asked``)."""
    global _keepers, _kept
    if not asked:
        yield
        return
    with _lock:
        _keepers += 1
    try:
        yield
    finally:
        with _lock:
            _keepers -= 1
            if _keepers == 0:
                _kept = None


def keeping() -> bool:
    """Whether a caller asked to keep maps: only then is a run's key worth computing (it hashes
    the frozen stages' weights and every file's path)."""
    with _lock:
        return _keepers > 0


def maps_key(trainer: Any, prefix: torch.nn.Module, views: Any, splits: list[str]) -> str:
    """A digest of everything the maps of ``trainer``'s run depend on (``views``: its
    augmentation settings and passes asked)."""
    import torch

    cfg = trainer.config
    digest = hashlib.blake2b(digest_size=20)
    what = (
        cfg.arch, cfg.frozen_stages, cfg.image_size, cfg.eval_size, cfg.tta, cfg.channels_last,
        trainer.precision, str(trainer.device), cfg.seed, repr(views), tuple(splits),
    )  # fmt: skip
    digest.update(repr(what).encode())
    for split in (*splits, "train"):
        digest.update(f"\0{split}\0".encode())
        digest.update("\0".join(map(str, trainer.data.paths[split])).encode())
    for name, tensor in prefix.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def take(key: str) -> KeptMaps | None:
    """The kept maps made as ``key`` says, or None; other maps are let go first, so a run that
    computes its own does not hold two sets."""
    global _kept
    with _lock:
        if _kept is not None and _kept[0] == key:
            return _kept[1]
        _kept = None
        return None


def keep(key: str, maps: KeptMaps) -> None:
    """Keep ``maps`` for the next run, where a caller asked."""
    global _kept
    with _lock:
        if _keepers:
            _kept = (key, maps)


def kept_seconds() -> float:
    """Seconds the kept maps took to compute (0 where none are kept): ``auto``'s next run of its
    winner does not pay them again (``recipes.longer``)."""
    with _lock:
        return _kept[1].seconds if _kept is not None else 0.0
