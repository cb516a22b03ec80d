"""Offline-safe starting weights: the default architecture, and checks before a run starts.

The torch hub cache is a temporary folder and the network probe is replaced, so these tests
say the same thing on a machine with or without internet or cached weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modelkit.cli.main import main
from modelkit.config import TrainConfig
from modelkit.models import registry as models
from modelkit.models import weights
from modelkit.models.registry import WeightsError
from modelkit.recipes import resolve_settings


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache; the network answers what ``online`` says (offline by default)."""
    folder = tmp_path / "hub"
    (folder / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(folder))
    monkeypatch.setattr(weights, "_host_reachable", lambda host, timeout: False)
    return folder


def _cache(hub: Path, arch: str) -> None:
    url = models.ARCHITECTURES[arch].weights.url
    (hub / "checkpoints" / Path(url).name).write_bytes(b"cached")


def test_offline_without_cached_weights_the_default_is_the_bundled_backbone(hub):
    assert weights.default_pretrained_arch() == "efficientnet_lite0"
    assert weights.imagenet_available("efficientnet_lite0")
    assert not weights.imagenet_available("resnet18")


def test_cached_resnet18_stays_the_default(hub):
    _cache(hub, "resnet18")
    assert weights.default_pretrained_arch() == "resnet18"


def test_online_users_keep_resnet18(hub, monkeypatch):
    monkeypatch.setattr(weights, "_host_reachable", lambda host, timeout: True)
    assert weights.default_pretrained_arch() == "resnet18"
    assert weights.default_pretrained_arch(probe_network=False) == "efficientnet_lite0"


def test_unavailable_weights_are_refused_up_front_naming_the_bundled_backbone(hub):
    with pytest.raises(WeightsError, match="--arch efficientnet_lite0") as err:
        weights.check_starting_weights("resnet18", "imagenet")
    assert "not cached" in str(err.value) and "--weights none" in str(err.value)
    weights.check_starting_weights("resnet18", "none")  # from scratch needs nothing
    weights.check_starting_weights("efficientnet_lite0", "imagenet")  # bundled


def test_resolve_settings_fills_the_architecture_only_when_none_was_chosen(hub):
    settings, note = resolve_settings("few-images", {})
    assert settings["arch"] == "efficientnet_lite0" and "bundled" in note
    assert settings["head_epochs"] == 5  # the recipe is kept
    settings, note = resolve_settings("", {"weights": "none"})
    assert "arch" not in settings and note == ""
    with pytest.raises(WeightsError, match="efficientnet_lite0"):
        resolve_settings("few-images", {"arch": "resnet34"})
    _cache(hub, "resnet18")
    assert resolve_settings("", {}) == ({"arch": "resnet18"}, "")


def test_cli_train_with_an_unavailable_arch_stops_before_the_run(
    hub, image_dataset, tmp_path, capsys
):
    runs = tmp_path / "runs"
    code = main(["train", str(image_dataset), "--arch", "resnet18", "--runs-dir", str(runs)])
    assert code == 1
    err = capsys.readouterr().err
    assert "efficientnet_lite0" in err and err.count("\n") == 1
    assert not runs.exists()  # nothing was started


def test_search_with_unavailable_weights_fails_once_before_any_trial(hub, image_dataset, tmp_path):
    from modelkit.tune.search import run_search

    base = TrainConfig(data_dir=str(image_dataset), arch="resnet34", runs_dir=str(tmp_path / "r"))
    with pytest.raises(WeightsError, match="efficientnet_lite0"):
        run_search(base, "offline", trials=3)
    assert not (tmp_path / "r" / "tune").exists()


@pytest.mark.slow
def test_cli_tune_with_default_settings_works_offline(hub, image_dataset, tmp_path, capsys):
    """``modelkit tune DATA`` with the default architecture and weights, on a machine with no
    cached weights and no network: the bundled backbone is used and the trials finish."""
    runs = tmp_path / "runs"
    code = main(
        ["tune", str(image_dataset), "--trials", "2", "--epochs", "1", "--image-size", "64",
         "--device", "cpu", "--precision", "fp32", "--runs-dir", str(runs)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "efficientnet_lite0" in captured.err  # the note said what was picked
    assert "Best: trial" in captured.out
    configs = [TrainConfig.load(p / "config.json") for p in runs.iterdir() if p.name != "tune"]
    assert len(configs) == 2
    assert {(c.arch, c.weights) for c in configs} == {("efficientnet_lite0", "imagenet")}
