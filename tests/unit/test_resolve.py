"""The one settings resolver: what the person gave beats a suggestion they took, which beats the
recipe or auto, which beats the architecture default, which beats where a front end starts; each
value says where it came from."""

from __future__ import annotations

import pytest

from modelkit.config import ConfigError, TrainConfig
from modelkit.models import weights
from modelkit.recipes import CPU_START, PRESETS, resolve


@pytest.fixture
def online(monkeypatch):
    monkeypatch.setattr(weights, "imagenet_available", lambda arch, probe=True: True)


def test_each_layer_wins_over_the_ones_below_and_says_so(online):
    out = resolve(
        "few-images", {"lr": 0.01}, start={**CPU_START, "epochs": 2, "hflip": False},
        start_source="machine", suggested={"lr": 0.003, "weight_decay": 0.1},
        suggested_source="lr finder",
    )  # fmt: skip
    s, src = out.settings, out.sources
    assert (s["lr"], src["lr"]) == (0.01, "given")  # over the finder's suggestion and the recipe
    assert (s["weight_decay"], src["weight_decay"]) == (0.1, "lr finder")  # over the recipe's
    assert (s["epochs"], src["epochs"]) == (PRESETS["few-images"]["epochs"], "recipe few-images")
    assert (s["hflip"], src["hflip"]) == (True, "recipe few-images")
    assert (s["image_size"], src["image_size"]) == (CPU_START["image_size"], "machine")
    assert (s["arch"], src["arch"]) == ("resnet18", "architecture default")
    assert ("lr", 0.01, "given") in out.where()
    TrainConfig(data_dir="x", **s)  # a valid config


def test_the_architecture_is_filled_only_when_none_was_chosen(online):
    assert "arch" not in resolve("", {"weights": "none"}).settings  # TrainConfig's own default
    assert resolve("", {"arch": "efficientnet_lite0"}).sources["arch"] == "given"


def test_offline_the_bundled_backbone_is_the_default_and_the_note_says_why(monkeypatch):
    bundled_only = lambda arch, probe=True: arch.startswith("efficientnet")  # noqa: E731
    monkeypatch.setattr(weights, "imagenet_available", bundled_only)
    out = resolve("", {})
    assert out.settings["arch"] == "efficientnet_lite0"
    assert "bundled with modelkit" in out.note
    with pytest.raises(weights.WeightsError, match="efficientnet_lite0"):
        resolve("", {"arch": "resnet50"})  # weights that cannot be had stop before the run
    assert resolve("", {"arch": "resnet50"}, check_weights=False).settings["arch"] == "resnet50"


def test_an_unknown_recipe_is_refused_by_name():
    with pytest.raises(ConfigError, match="'fast' is not one of"):
        resolve("fast", {})


def test_auto_chooses_from_the_dataset_and_what_was_given_wins(tmp_path, helpers, online):
    data = helpers.write_dataset(tmp_path / "data", num_classes=2, per_class=8)
    out = resolve("auto", {"epochs": 3}, dataset=str(data), probe_network=False)
    assert out.auto is not None and out.notes == out.auto.lines()
    assert (out.settings["epochs"], out.sources["epochs"]) == (3, "given")
    assert out.sources["arch"] == "auto" and out.sources["lr"] == "auto"
