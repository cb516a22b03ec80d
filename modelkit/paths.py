"""The one place that turns a path a person typed into a path the app may use.

The app can be reached from a browser, so every folder or file it is given (the Dataset page, the
Train and Tune forms, the learning-rate finder, starting weights, the job registry) goes through
``resolve_allowed``: ``~``, ``..`` and symlinks are resolved first, then the real location must lie
inside one of the allowed roots (``MODELKIT_ALLOWED_ROOTS``). A refusal names the path as it was
typed and nothing else, so it never tells whether something exists outside the roots.

The command line is not confined: whoever runs ``modelkit`` already has the files. The app confines
the dataset scan too, with ``confine_to(roots)`` around the work it starts; the scan then skips
class folders and files whose real location leaves the roots and lists them in its report.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from modelkit.errors import ModelkitError

_CONFINED: ContextVar[tuple[Path, ...] | None] = ContextVar("modelkit_allowed_roots", default=None)


class PathNotAllowedError(ModelkitError, ValueError):
    """A path outside the allowed roots, or one that cannot be read as a path at all."""


def _real_unique(roots: Iterable[str | os.PathLike]) -> tuple[Path, ...]:
    out: list[Path] = []
    for r in roots:
        real = Path(r).expanduser().resolve()
        if real not in out:
            out.append(real)
    return tuple(out)


def normalise_roots(roots: Iterable[str | os.PathLike]) -> tuple[Path, ...]:
    """Real absolute roots, without repeats; an empty list is refused (nothing would be allowed)."""
    out = _real_unique(roots)
    if not out:
        raise PathNotAllowedError(
            "no folders are allowed for browsing (MODELKIT_ALLOWED_ROOTS is empty)"
        )
    return out


def roots_from_env(default: Iterable[str | os.PathLike]) -> tuple[Path, ...]:
    """``MODELKIT_ALLOWED_ROOTS`` (``os.pathsep``-separated), or ``default`` when it is unset.

    May be empty (a variable of separators only); every check then refuses, with that reason."""
    text = os.environ.get("MODELKIT_ALLOWED_ROOTS")
    if text:
        return _real_unique(p for p in text.split(os.pathsep) if p.strip())
    return _real_unique(default)


def within(path: str | os.PathLike, roots: Iterable[Path]) -> bool:
    """Whether the already-real ``path`` is one of ``roots`` or lies under one."""
    path = Path(path)
    return any(path == r or path.is_relative_to(r) for r in roots)


def real_within(path: str | os.PathLike, roots: Iterable[Path]) -> bool:
    """Whether ``path``, with every symlink resolved, stays inside ``roots``."""
    try:
        return within(os.path.realpath(path), roots)
    except (OSError, ValueError):
        return False


def resolve_allowed(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> Path:
    """The real absolute location of ``path``, or PathNotAllowedError if it is outside the roots.

    The path does not have to exist (callers check that and say so, inside the roots only). Every
    refusal reads the same whatever lies outside: a missing folder, a file, a symlink loop.
    """
    text = os.fsdecode(os.fspath(path))
    if not text.strip():
        raise PathNotAllowedError("no folder given")
    if "\x00" in text:
        raise PathNotAllowedError("the path contains a NUL character")
    allowed = normalise_roots(roots)
    try:
        real = Path(text.strip()).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, an unknown ~user
        real = None
    if real is None or not within(real, allowed):
        shown = ", ".join(str(r) for r in allowed)
        raise PathNotAllowedError(
            f"{text.strip()} is outside the folders this app may open ({shown})"
        )
    return real


@contextmanager
def confine_to(roots: Iterable[str | os.PathLike] | None) -> Iterator[None]:
    """Within this block (and threads started with a copy of its context), scans stay in
    ``roots``; None lifts the confinement, as on the command line."""
    token = _CONFINED.set(None if roots is None else normalise_roots(roots))
    try:
        yield
    finally:
        _CONFINED.reset(token)


def confine_from_now(roots: Iterable[str | os.PathLike]) -> None:
    """Confine the rest of this context (and the threads it starts with a copy of it), with no
    block to close: the app's entry script sets it on every run, since Streamlit may run a page
    after the entry script's own blocks have closed, and render parts of it in worker threads
    that copy the script's context."""
    _CONFINED.set(normalise_roots(roots))


def confined_roots() -> tuple[Path, ...] | None:
    """The roots set by the innermost ``confine_to``, or None when nothing is confined."""
    return _CONFINED.get()


class UntrustedFileError(ModelkitError, OSError):
    """A file that must not be read as asked: not a regular file, too large, or outside the
    allowed roots. An OSError, so every caller that reports unreadable files reports it too."""


MB = 2**20
# An image file larger than this is refused unread: a 179-Mpx photo (imageio.MAX_PIXELS) is far
# smaller compressed, and a sparse or endless file would otherwise be read whole.
MAX_IMAGE_FILE_BYTES = 512 * MB
MAX_RUN_FILE_BYTES = 512 * MB  # a run's JSON files: splits.json of a million images fits


def read_untrusted(
    path: str | os.PathLike, limit: int, roots: Iterable[Path] | None | bool = True
) -> bytes:
    """The bytes of ``path``, read only when it is a regular file of at most ``limit`` bytes
    and, under confinement, inside the allowed roots (``roots``: True for the current
    confinement, which worker threads do not inherit, so a pool passes the caller's).

    Data sets and run folders from elsewhere name files: a FIFO never ends, /dev/zero or a
    sparse 8 GB file fills the memory, and a path outside the roots would be shown or scored;
    every read of such a file goes through here (the second attacker probe, issue #29)."""
    confined = confined_roots() if roots is True else roots
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
            raise UntrustedFileError(errno.EINVAL, f"is {kind}, not a file", str(path))
        if info.st_size > limit:
            raise UntrustedFileError(
                errno.EFBIG,
                f"is {info.st_size / MB:,.0f} MB, more than the {limit / MB:,.0f} MB allowed",
                str(path),
            )
        if confined is not None and not real_within(path, confined):
            raise UntrustedFileError(
                errno.EACCES, "lies outside the folders this app may open", str(path)
            )
        chunks, size = [], 0
        while size <= limit:  # a file that grows while read stops at the limit too
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise UntrustedFileError(errno.EFBIG, f"grew past {limit / MB:,.0f} MB", str(path))
        return b"".join(chunks)
    finally:
        os.close(fd)
