"""TensorBoard event files for a run, written by a listener: ``runs/<id>/tensorboard/``.

``tensorboard --logdir runs`` then shows every run's curves side by side. The Trainer adds this
listener when the ``tensorboard`` package is importable and the config's ``tensorboard`` is on.
Scalars: ``batch/loss`` and ``batch/lr`` per optimizer step, ``epoch/<metric>`` per epoch (the
numbers of metrics.jsonl). Writing problems turn the logger off; they never stop training.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from modelkit.events import BatchEnd, EpochEnd, Event, Failed, Finished, RunStarted, Stopped
from modelkit.runs.folder import RunFolder


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardLogger:
    def __init__(self) -> None:
        self.writer: Any = None
        self.broken = False

    def __call__(self, event: Event) -> None:
        if self.broken:
            return
        try:
            self._handle(event)
        except Exception:  # noqa: BLE001 - an optional log must never fail the run
            self.broken = True
            self.close()

    def _handle(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            from torch.utils.tensorboard import SummaryWriter

            # Resuming: a killed process may have logged steps past its last checkpoint, which
            # this run logs again; purge_step makes TensorBoard drop the stale ones.
            purge = event.start_step + 1 if event.start_step else None
            folder = str(RunFolder(event.run_dir).tensorboard)
            self.writer = SummaryWriter(folder, purge_step=purge)
            if not event.start_epoch:
                text = "```\n" + json.dumps(event.config, indent=2) + "\n```"
                self.writer.add_text("config", text, 0)
        elif self.writer is None:
            return
        elif isinstance(event, BatchEnd):
            self.writer.add_scalar("batch/loss", event.loss, event.global_step)
            self.writer.add_scalar("batch/lr", event.lr, event.global_step)
        elif isinstance(event, EpochEnd):
            for key, value in event.metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"epoch/{key}", value, event.epoch + 1)
            self.writer.flush()
        elif isinstance(event, (Finished, Stopped, Failed)):
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001
                pass
            self.writer = None
