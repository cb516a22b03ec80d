"""Small helpers that test modules import by name (``from helpers import png_bytes``): the
conftest next to a test cannot be imported reliably, since every conftest.py is a module called
``conftest``. tests/ is on sys.path because tests/conftest.py sits there (pytest's prepend mode).
"""

from __future__ import annotations

import io
import socket
import zipfile
from pathlib import Path

import numpy as np
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


# Base colour and pattern per class: different enough that a tiny net separates them in an epoch.
CLASS_STYLES = (
    ("red", (210, 40, 40), "hstripes"),
    ("green", (40, 190, 60), "vstripes"),
    ("blue", (40, 60, 210), "checker"),
    ("yellow", (220, 210, 40), "dots"),
    ("purple", (150, 40, 170), "plain"),
    ("cyan", (40, 200, 210), "diagonal"),
)


def make_image(
    colour: tuple[int, int, int],
    pattern: str,
    size: tuple[int, int] = (40, 48),
    rng: np.random.Generator | None = None,
) -> Image.Image:
    """A ``size`` (width, height) RGB image: ``colour`` with a dark ``pattern`` and some noise."""
    rng = rng or np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    mask = {
        "hstripes": (yy // 4) % 2 == 0,
        "vstripes": (xx // 4) % 2 == 0,
        "checker": ((yy // 6) + (xx // 6)) % 2 == 0,
        "dots": ((yy % 8) < 3) & ((xx % 8) < 3),
        "diagonal": ((xx + yy) // 5) % 2 == 0,
        "plain": np.zeros((h, w), bool),
    }[pattern]
    arr = np.empty((h, w, 3), np.float32)
    arr[:] = colour
    arr[mask] *= 0.45
    arr += rng.normal(0, 12, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def write_dataset(
    root: str | Path,
    num_classes: int = 3,
    per_class: int = 10,
    size: tuple[int, int] = (40, 48),
    seed: int = 0,
    ext: str = ".png",
) -> Path:
    """Write ``root/<class>/<class>_NN.png``: ``num_classes`` (<= 6) distinguishable classes."""
    if not 1 <= num_classes <= len(CLASS_STYLES):
        raise ValueError(f"num_classes must be 1..{len(CLASS_STYLES)}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for name, colour, pattern in CLASS_STYLES[:num_classes]:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_image(colour, pattern, size, rng).save(folder / f"{name}_{i:02d}{ext}")
    return root


# Small, exact settings for training tests: no pretrained weights, fp32 on the CPU.
FAST_SETTINGS = dict(
    weights="none",
    image_size=32,
    batch_size=8,
    epochs=2,
    precision="fp32",
    device="cpu",
    lr=0.01,
    seed=0,
)


# The same idea as command-line flags, for tests that train through ``modelkit train``.
FAST_TRAIN_FLAGS = [
    "--epochs", "1", "--image-size", "32", "--weights", "none", "--arch", "resnet18",
    "--batch-size", "4", "--device", "cpu", "--precision", "fp32",
]  # fmt: skip


def fast_config(data_dir: str | Path, runs_dir: str | Path, **overrides):
    """A TrainConfig with FAST_SETTINGS for ``data_dir``, writing runs to ``runs_dir``."""
    from modelkit.config import TrainConfig

    return TrainConfig(
        **{**FAST_SETTINGS, "data_dir": str(data_dir), "runs_dir": str(runs_dir), **overrides}
    )


class FakeJob:
    """What the live view and the sidebar read of a training job: its name and a snapshot
    (a ``modelkit.jobs.LiveView``); nothing trains."""

    def __init__(self, view, name: str = "20260101-000000-resnet18-abcd") -> None:
        self.view, self.name = view, name

    def snapshot(self):
        return self.view

    def stop(self) -> None:
        pass
