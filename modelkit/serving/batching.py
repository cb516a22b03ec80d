"""Dynamic batching: requests that arrive together share one forward pass.

A model answers 32 images in little more time than one, so the server queues each image and a
single worker thread takes whatever is waiting: it blocks for the first item, then waits at most
``max_wait_s`` for more, up to ``max_batch``, and runs them as one batch. A lone request pays
only ``max_wait_s``; a busy server fills its batches. ``max_batch=1`` turns batching off (one
item per call, the same code path) for comparison. The worker is one thread, so the model is
never called from two threads at once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any


class QueueFullError(RuntimeError):
    """More images are waiting than the server accepts; the client should retry later."""


class DynamicBatcher:
    def __init__(
        self,
        run_batch: Callable[[Sequence[Any]], Sequence[Any]],
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 1024,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[Any, Future] | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self.batch_sizes: Counter[int] = Counter()  # size -> how many batches had it
        self._thread = threading.Thread(target=self._work, name="modelkit-batcher", daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> Future:
        """Queue one item; the Future gets its result (or the batch's exception)."""
        future: Future = Future()
        try:
            self._queue.put_nowait((item, future))
        except queue.Full:
            raise QueueFullError(
                f"the server is busy ({self._queue.maxsize} images waiting); try again shortly"
            ) from None
        return future

    def stats(self) -> dict[str, Any]:
        """Batches run so far by size, and how many items wait now."""
        with self._lock:
            sizes = dict(sorted(self.batch_sizes.items()))
        return {
            "batches": sum(sizes.values()),
            "items": sum(k * v for k, v in sizes.items()),
            "batch_sizes": sizes,
            "waiting": self._queue.qsize(),
        }

    def close(self) -> None:
        """Stop the worker after the items already queued."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _collect(self, first: tuple[Any, Future]) -> tuple[list[tuple[Any, Future]], bool]:
        batch, closing = [first], False
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is None:
                closing = True
                break
            batch.append(entry)
        return batch, closing

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, closing = self._collect(first)
            live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if live:
                self._run(live)
            if closing:
                return

    def _run(self, batch: list[tuple[Any, Future]]) -> None:
        with self._lock:
            self.batch_sizes[len(batch)] += 1
        try:
            results = list(self.run_batch([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request, never lost
            for _, fut in batch:
                fut.set_exception(exc)
            return
        for (_, fut), result in zip(batch, results):
            fut.set_result(result)
