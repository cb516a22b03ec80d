"""The errors of a training run and the advice a person reads when one happens."""

from __future__ import annotations

import errno
import re

import torch

from modelkit.data.scan import DatasetError
from modelkit.errors import ModelkitError


class TrainingError(ModelkitError, RuntimeError):
    """Training could not go on; the message says why in words a person can act on."""


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite (too high a learning rate); the LR finder expects it."""


class StopTraining(Exception):
    """Raised inside the loop's set-up when the user stops a run before its first epoch ends
    (while images decode or features are cached); ``epoch``/``batch`` say where."""

    def __init__(self, epoch: int, batch: int):
        super().__init__(f"stopped in epoch {epoch + 1}, batch {batch}")
        self.epoch, self.batch = epoch, batch


# PyTorch's CPU allocator never says "out of memory": "[enforce fail at alloc_cpu.cpp:127] err ==
# 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes. Error code 12".
_CPU_ALLOCATOR = re.compile(r"DefaultCPUAllocator: (?:can't allocate|not enough) memory", re.I)
_ASKED_BYTES = re.compile(r"tried to allocate (\d+) bytes", re.I)


def _size(n: int) -> str:
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def explain_error(exc: BaseException) -> str:
    """Turn the errors people actually hit into advice."""
    if isinstance(exc, (TrainingError, DatasetError)):
        return str(exc)  # ours already say what to do; no class-name prefix
    text = str(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text.lower():
        first = text.splitlines()[0][:200] if text else ""
        return f"out of memory ({first}); try a smaller batch size or image size"
    if _CPU_ALLOCATOR.search(text):
        asked = _ASKED_BYTES.search(text)
        detail = f" (tried to allocate {_size(int(asked.group(1)))})" if asked else ""
        return f"out of memory{detail}; try a smaller batch size or image size"
    if isinstance(exc, MemoryError):
        detail = f" ({exc})" if str(exc) else ""
        return f"out of memory{detail}; try a smaller batch size or image size"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"the disk is full ({exc.filename or ''}); free some space and resume the run"
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return f"cannot write to {exc.filename or 'the runs folder'}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.errno is None:
        return str(exc)  # ours (e.g. RunStore.create) already name the folder and the reason
    return f"{type(exc).__name__}: {exc}"
