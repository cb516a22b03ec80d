"""Decode-once image cache: every image is decoded, EXIF-rotated and resized exactly once.

Training then only slices uint8 arrays and augments whole batches as tensors, which is what makes
the default loop several times faster than per-epoch PIL transforms.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from modelkit.imageio import ImageLoadError, load_image, square_resize


class CacheBudgetError(MemoryError):
    """The cache cannot fit in RAM nor on disk; the message suggests a smaller image size."""


class ImageCache:
    """``N x S x S x 3`` uint8 squares, in RAM or in a memory-mapped file beyond the RAM budget.

    Files that fail to decode are kept out (``valid`` is False) and listed in ``errors`` with the
    reason, so one bad photo never stops a run.
    """

    def __init__(
        self,
        paths: Sequence[str],
        size: int,
        ram_budget_mb: float = 4096,
        spill_dir: str | os.PathLike | None = None,
        workers: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.paths = list(paths)
        self.size = size
        n = len(self.paths)
        nbytes = n * size * size * 3
        self.on_disk = nbytes > ram_budget_mb * 1024 * 1024
        if self.on_disk:
            folder = Path(spill_dir or tempfile.gettempdir())
            folder.mkdir(parents=True, exist_ok=True)
            free = _free_bytes(folder)
            if free is not None and free < nbytes:
                raise CacheBudgetError(
                    f"the decode cache needs {nbytes / 2**30:.1f} GiB but the RAM budget is "
                    f"{ram_budget_mb} MB and {folder} has {free / 2**30:.1f} GiB free; "
                    "use a smaller image size or raise cache_ram_mb"
                )
            fd, name = tempfile.mkstemp(dir=folder, prefix="modelkit-cache-", suffix=".u8")
            os.close(fd)
            self._file = name
            self.array = np.memmap(
                name, dtype=np.uint8, mode="w+", shape=(max(n, 1), size, size, 3)
            )
            os.unlink(name)  # the mapping keeps the data alive; nothing is left behind on exit
        else:
            self._file = None
            self.array = np.empty((n, size, size, 3), dtype=np.uint8)
        self.valid = np.zeros(n, dtype=bool)
        self.errors: list[tuple[str, str]] = []
        self._should_stop = should_stop or (lambda: False)
        self._fill(workers or os.cpu_count() or 1, progress)

    def _fill(self, workers: int, progress: Callable[[int, int], None] | None) -> None:
        total = len(self.paths)
        lock = threading.Lock()
        done = 0
        step = max(1, total // 100)

        def work(i: int) -> None:
            nonlocal done
            if self._should_stop():
                return
            try:
                img = load_image(self.paths[i], min_size=self.size)
                self.array[i] = square_resize(img, self.size)
                self.valid[i] = True
            except ImageLoadError as exc:
                with lock:
                    self.errors.append((self.paths[i], exc.reason))
            with lock:
                done += 1
                if progress and (done % step == 0 or done == total):
                    progress(done, total)

        if workers <= 1 or total < 8:
            for i in range(total):
                work(i)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(work, range(total)))
        self.errors.sort()

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        return len(self.paths) * self.size * self.size * 3

    def batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``B x S x S x 3`` tensor of the given rows (a copy, safe to move to a device)."""
        idx = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(np.ascontiguousarray(self.array[idx]))


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize
