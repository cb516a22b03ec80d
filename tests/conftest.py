"""Shared test helpers: tiny datasets made on the fly, small training settings, a trained run.

Everything is written under pytest's tmp paths; no test reads ../shared or the network.
Helpers that test modules import by name (PNG and zip bytes, a free port) are in helpers.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    FAST_SETTINGS,
    FAST_TRAIN_FLAGS,
    fast_config,
    free_port,
    make_image,
    make_zip,
    png_bytes,
    write_dataset,
)
from PIL import Image


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
