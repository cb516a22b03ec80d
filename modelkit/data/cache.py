"""Decode-once image cache: every image is decoded, EXIF-rotated and resized exactly once.

Training then only slices uint8 arrays and augments whole batches as tensors, which is what makes
the default loop several times faster than per-epoch PIL transforms.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from modelkit.data.imageio import ImageLoadError, load_image, square_resize
from modelkit.errors import ModelkitError
from modelkit.paths import MAX_IMAGE_FILE_BYTES, UntrustedFileError, confined_roots, read_untrusted


class CacheBudgetError(ModelkitError, MemoryError):
    """The cache cannot fit in RAM nor on disk; the message suggests a smaller image size."""


class DecodedStore:
    """Decoded squares kept across runs in this process, keyed by file identity and content.

    The key is (path, size in bytes, mtime, content digest, square size): a file edited in place
    is decoded again even if its size and mtime were kept. Reading and hashing a file costs a
    small fraction of decoding it, so a second run on the same folder (the usual case in the
    app) starts training almost at once. Least recently used entries go beyond ``max_bytes``.

    An entry may be a row of a cache's array rather than a copy: the store then costs no memory
    beyond that cache while it lives (a copy per row doubled a training run's footprint). So the
    budget counts each array an entry keeps alive once, whole; a row is copied only when its
    array alone would exceed the budget.
    """

    def __init__(self, max_bytes: int = 2 * 1024**3):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._owners: dict[int, list] = {}  # id(array kept alive) -> [array, entries using it]
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            square = self._entries.get(key)
            if square is not None:
                self._entries.move_to_end(key)
            return square

    def put(self, key: tuple, square: np.ndarray) -> None:
        """Keep ``square`` (or replace the entry of ``key``); a view keeps its array alive."""
        if square.nbytes > self.max_bytes:
            return
        if _owner(square).nbytes > self.max_bytes:
            square = square.copy()
        with self._lock:
            if key in self._entries:
                self._release(self._entries.pop(key))
            self._entries[key] = square
            owner = _owner(square)
            held = self._owners.setdefault(id(owner), [owner, 0])
            if held[1] == 0:
                self._bytes += owner.nbytes
            held[1] += 1
            while self._bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self._release(old)

    def _release(self, square: np.ndarray) -> None:
        owner = _owner(square)
        held = self._owners[id(owner)]
        held[1] -= 1
        if held[1] == 0:
            del self._owners[id(owner)]
            self._bytes -= owner.nbytes

    @property
    def nbytes(self) -> int:
        """Bytes of every array the store keeps alive (each counted once)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)


def _owner(square: np.ndarray) -> np.ndarray:
    """The array whose memory ``square`` uses (itself unless it is a view)."""
    return square.base if isinstance(square.base, np.ndarray) else square


DECODED = DecodedStore()


def file_key(path: str, data: bytes, size: int) -> tuple:
    st = os.stat(path)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns, digest, size)


FILL_SLICE = 1024  # files handed to the decoding threads at a time


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
        store: DecodedStore | None = DECODED,
    ):
        self.paths = list(paths)
        self.store = store
        # the confinement of whoever built the cache: its decoding threads do not inherit it
        self.roots = confined_roots()
        self.decoded = 0  # files decoded by this cache (the rest came from the store)
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
            path = self.paths[i]
            try:
                square, key = self._square(path)
                self.array[i] = square
                self.valid[i] = True
                if key is not None and not self.on_disk:  # over its RAM budget: keep none
                    self.store.put(key, self.array[i])  # a view: no second copy
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
        else:  # in slices: a future per file for 100k files held ~200 MB until the end
            with ThreadPoolExecutor(workers) as pool:
                for start in range(0, total, FILL_SLICE):
                    list(pool.map(work, range(start, min(start + FILL_SLICE, total))))
        self.errors.sort()

    def _square(self, path: str) -> tuple[np.ndarray, tuple | None]:
        """One file's square and store key: read once, hashed, decoded only when the store
        lacks it."""
        try:
            data = read_untrusted(path, MAX_IMAGE_FILE_BYTES, self.roots)
        except OSError as exc:
            raise ImageLoadError(path, _os_reason(exc)) from None
        key = file_key(path, data, self.size) if self.store is not None else None
        if key is not None and (hit := self.store.get(key)) is not None:
            return hit, key
        buffer = io.BytesIO(data)
        buffer.name = path
        square = square_resize(load_image(buffer, min_size=self.size), self.size)
        self.decoded += 1
        return square, key

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        return len(self.paths) * self.size * self.size * 3

    def batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``B x S x S x 3`` tensor of the given rows (a copy, safe to move to a device)."""
        idx = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(np.ascontiguousarray(self.array[idx]))


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, UntrustedFileError):
        return str(exc.strerror)
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image"
    return f"cannot read: {exc.strerror or exc}"


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize
