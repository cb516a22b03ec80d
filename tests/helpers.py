"""Small helpers that test modules import by name (``from helpers import png_bytes``): the
conftest next to a test cannot be imported reliably, since every conftest.py is a module called
``conftest``. tests/ is on sys.path because tests/conftest.py sits there (pytest's prepend mode).
"""

from __future__ import annotations

import io
import socket
import zipfile

from PIL import Image


def png_bytes(
    colour: tuple[int, int, int] = (220, 40, 40), size: int | tuple[int, int] = 40
) -> bytes:
    """The bytes of a solid-``colour`` PNG, ``size`` (width, height) or ``size`` x ``size`` px."""
    if isinstance(size, int):
        size = (size, size)
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of ``{name: data}``, as bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def free_port() -> int:
    """A loopback TCP port nothing listens on (now: take it soon)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
