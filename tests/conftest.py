"""Shared test helpers: tiny datasets made on the fly, small training settings, a trained run.

Everything is written under pytest's tmp paths; no test reads ../shared or the network.
Helpers that test modules import by name (PNG and zip bytes, a free port) are in helpers.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port, make_zip, png_bytes
from PIL import Image

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


@pytest.fixture
def draw_image() -> Callable[..., Image.Image]:
    """``draw_image(colour, pattern, size=(w, h), rng=None)``: a PIL image (see make_image)."""
    return make_image


@pytest.fixture
def make_dataset(tmp_path) -> Callable[..., Path]:
    """``make_dataset(name="data", **kwargs)``: write_dataset under tmp_path / name."""

    def make(name: str = "data", **kwargs) -> Path:
        return write_dataset(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def image_dataset(make_dataset) -> Path:
    """3 classes x 10 images of 40x48 px."""
    return make_dataset()


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


@pytest.fixture
def make_config(tmp_path, image_dataset):
    """``make_config(**overrides)``: a fast TrainConfig on ``image_dataset``, runs in tmp_path."""

    def make(**overrides):
        data_dir = overrides.pop("data_dir", image_dataset)
        return fast_config(data_dir, tmp_path / "runs", **overrides)

    return make


def write_checkpoint(
    path: str | Path,
    classes: list[str] | tuple[str, ...] = ("red", "green", "blue"),
    image_size: int = 32,
    arch: str = "resnet18",
    seed: int = 0,
) -> Path:
    """An untrained but complete modelkit checkpoint (what a Predictor needs), without training."""
    import torch

    from modelkit.config import TrainConfig
    from modelkit.models.checkpoint import save_checkpoint
    from modelkit.models.registry import build_model, preprocessing

    torch.manual_seed(seed)
    cfg = TrainConfig(**{**FAST_SETTINGS, "arch": arch, "image_size": image_size})
    model = build_model(arch, len(classes)).eval()
    path = Path(path)
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "arch": arch,
            "classes": list(classes),
            "config": cfg.to_dict(),
            "preprocess": preprocessing(image_size, arch),
            "epoch": 1,
            "metrics": {},
        },
    )
    return path


@pytest.fixture
def checkpoint_file(tmp_path) -> Path:
    """An untrained 3-class resnet18 checkpoint at tmp_path/run/checkpoints/best.pt."""
    return write_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")


@pytest.fixture(scope="session")
def helpers():
    """The module-level helpers, for fixtures with a wider scope than a test (module, session)."""
    import types

    return types.SimpleNamespace(
        write_dataset=write_dataset,
        make_image=make_image,
        fast_config=fast_config,
        fast_train_flags=list(FAST_TRAIN_FLAGS),
        write_checkpoint=write_checkpoint,
        png_bytes=png_bytes,
        make_zip=make_zip,
        free_port=free_port,
    )


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """No connection leaves the test: torch.hub's downloads fail as they do offline (the list
    returned collects the URLs asked for), and the built-in datasets' host probe answers
    "reachable" without connecting, so their (faked) download is what runs."""
    import urllib.error

    import torch

    from modelkit.data import builtin

    calls: list[str] = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(builtin, "_reachable", lambda url, timeout=0: True)
    return calls


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One finished 2-epoch run shared by read-only tests (inference, CLI). Do not modify:
    copy it (shutil.copytree) first when a test writes into a run folder."""
    from modelkit.training.loop import Trainer

    base = tmp_path_factory.mktemp("trained")
    data = write_dataset(base / "data", num_classes=3, per_class=10, seed=1)
    cfg = fast_config(data, base / "runs")
    result = Trainer(cfg).fit()
    assert result.state == "finished"
    return result.run_dir
