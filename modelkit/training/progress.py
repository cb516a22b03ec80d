"""The CLI's listener: a progress bar per epoch and one summary line per epoch."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from modelkit.events import (
    BatchEnd,
    CacheProgress,
    EpochEnd,
    Event,
    Failed,
    Message,
    RunStarted,
)
from modelkit.names import printable


class ProgressPrinter:
    def __init__(self, stream: TextIO = sys.stderr):
        self.stream = stream
        self.bar: tqdm | None = None
        self.bar_key: tuple | None = None

    def _bar(self, key: tuple, total: int, desc: str) -> tqdm:
        if self.bar_key != key:
            self.close()
            self.bar = tqdm(total=total, desc=desc, file=self.stream, leave=False, disable=None)
            self.bar_key = key
        assert self.bar is not None
        return self.bar

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar, self.bar_key = None, None

    def write(self, text: str) -> None:
        """Each line of ``text`` with the control characters of its names (files, classes, the
        run folder) shown as escapes: messages name files anyone may have named."""
        text = "\n".join(printable(line) for line in text.split("\n"))
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.write(
                f"run {event.run_dir}: {event.num_train} train / {event.num_val} val images, "
                f"{len(event.classes)} classes, {event.device} ({event.precision})"
            )
        elif isinstance(event, CacheProgress):
            bar = self._bar(("cache",), event.total, "decoding images")
            bar.n = event.done
            bar.refresh()
            if event.done >= event.total:
                self.close()
        elif isinstance(event, BatchEnd):
            bar = self._bar(("epoch", event.epoch), event.batches, f"epoch {event.epoch + 1}")
            bar.update(1)
            bar.set_postfix(loss=f"{event.loss:.4f}", img_s=f"{event.images_per_second:.0f}")
        elif isinstance(event, EpochEnd):
            self.close()
            m = event.metrics
            parts = [f"epoch {event.epoch + 1}/{event.epochs}"]
            for key in ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5"):
                if key in m:
                    parts.append(f"{key}={m[key]:.4f}")
            parts.append(f"{m.get('images_per_second', 0):.0f} img/s")
            self.write("  ".join(parts) + ("  *" if event.is_best else ""))
        elif isinstance(event, Message):
            self.write(("warning: " if event.level == "warning" else "") + event.text)
        elif isinstance(event, Failed):
            self.close()
