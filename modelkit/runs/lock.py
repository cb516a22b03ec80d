"""One writer per run folder: an exclusive ``fcntl.flock`` held for as long as a process trains it.

Two processes resuming the same run would interleave metric rows and overwrite each other's
checkpoints and status. The lock lives in the run folder (``.train.lock``) and is held on an open
file, so the kernel releases it when the process ends in any way, ``kill -9`` included: a killed
run is never left locked and still resumes. The file itself stays; only the lock on it counts.
The lock file is opened without following links, and only a plain file of its own is written: a
run folder from elsewhere whose lock is a link (or a hard link) to a user's file is refused.
The lock is also the only thing that says a run is training (``RunStore`` asks ``is_locked``):
a pid in status.json can name any live process.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from modelkit.errors import ModelkitError
from modelkit.runs.folder import RunFolder

_NO_LINKS = os.O_NOFOLLOW | os.O_CLOEXEC


class RunLockedError(ModelkitError, RuntimeError):
    """The run is being trained by another process (or another job of this one)."""


class RunLockFileError(ModelkitError, RuntimeError):
    """The run's lock file is not a plain file of the run's own (a link to another file)."""


def _open_lock(path: Path, flags: int) -> int:
    """The lock file's descriptor; RunLockFileError when it is a symlink or has other names."""
    try:
        fd = os.open(path, flags | _NO_LINKS, 0o644)
    except OSError as exc:
        if os.path.islink(path):
            raise RunLockFileError(
                f"{path}: the run's lock file is a link to another file; refused to use it "
                "(remove the link to train this run)"
            ) from None
        raise exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        raise RunLockFileError(
            f"{path}: the run's lock file is not a plain file of its own (it has other names); "
            "refused to write it (remove it to train this run)"
        )
    return fd


def _message(run_dir: Path, holder: str) -> str:
    who = f" (process {holder})" if holder.isdigit() else ""
    return (
        f"run {run_dir.name} is being trained by another process{who}; wait for it to finish "
        "or stop it before resuming this run"
    )


class RunLock:
    """The held lock on a run folder; ``release()`` (or leaving the ``with`` block) frees it."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock now or raise RunLockedError; never waits."""
        fd = _open_lock(RunFolder(self.run_dir).lock, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(_message(self.run_dir, holder)) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def lock_run(run_dir: str | Path) -> RunLock:
    """Lock ``run_dir`` for this process's training, or raise RunLockedError naming the run."""
    return RunLock(run_dir).acquire()


def is_locked(run_dir: str | Path) -> bool:
    """Whether some process (this one included) is training ``run_dir`` right now."""
    try:
        fd = os.open(RunFolder(run_dir).lock, os.O_RDONLY | _NO_LINKS)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def refuse_if_locked(run_dir: str | Path) -> None:
    """RunLockedError when another process trains ``run_dir``: checked before a resume starts."""
    path = Path(run_dir)
    if is_locked(path):
        fd = os.open(RunFolder(path).lock, os.O_RDONLY | _NO_LINKS)
        try:
            holder = _read_holder(fd)
        finally:
            os.close(fd)
        raise RunLockedError(_message(path, holder))
