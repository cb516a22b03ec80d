"""Settings that size memory are bounded, in the config and in a checkpoint's metadata (issue #29:
a 4.6 KB checkpoint asked for ~100 GiB of head; 1024 px x batch 4096 hit the raw allocator)."""

from __future__ import annotations

import pytest

from modelkit.config import ConfigError, TrainConfig
from modelkit.models import registry
from modelkit.models.checkpoint import CheckpointError, save_checkpoint
from modelkit.models.metadata import metadata_problem


def problems_of(**kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(kwargs)
    return str(info.value).splitlines()


# -- the config -------------------------------------------------------------------------------
def test_ten_thousand_head_layers_are_refused_naming_head_hidden():
    (line,) = problems_of(head="mlp", head_hidden=[64] * 10_000)
    assert line.startswith("head_hidden: ") and "10000" in line


def test_a_huge_head_width_is_refused_naming_head_hidden():
    (line,) = problems_of(head="mlp", head_hidden=[10**9])
    assert line.startswith("head_hidden: ")


def test_head_weights_between_layers_are_bounded():
    (line,) = problems_of(head="mlp", head_hidden=[8192] * 4)  # three 8192x8192 matrices
    assert line.startswith("head_hidden: ")


def test_image_size_times_batch_size_is_bounded():
    (line,) = problems_of(image_size=1024, batch_size=4096)
    assert line.startswith("batch_size: ") and "image_size" in line and "4096" in line
    (line,) = problems_of(eval_size=1024, batch_size=4096)
    assert line.startswith("batch_size: ") and "eval_size" in line


def test_every_bad_field_is_named_at_once():
    lines = problems_of(head="mlp", head_hidden=[64] * 10_000, image_size=1024, batch_size=4096)
    assert [line.split(":")[0] for line in lines] == ["head_hidden", "batch_size"]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"head": "mlp", "head_hidden": [8192, 8192]},
        {"head": "mlp", "head_hidden": [1024, 512, 256, 128, 64, 32, 16, 8]},
        {"image_size": 224, "batch_size": 1024},
        {"image_size": 512, "batch_size": 256},
        {"image_size": 1024, "batch_size": 64},
        {"image_size": 128, "batch_size": 4096},
    ],
)
def test_usual_large_settings_stay_valid(settings):
    TrainConfig(**settings)


# -- a checkpoint's metadata --------------------------------------------------------------------
def _payload(**config) -> dict:
    return {
        "format": "modelkit",
        "format_version": 1,
        "model": {},
        "arch": "resnet18",
        "classes": ["a", "b"],
        "config": {"head": "mlp", "head_dropout": 0.0, **config},
        "preprocess": {"image_size": 32, "resize_size": 37},
    }


@pytest.mark.parametrize("hidden", [[8192] * 400, [64] * 10_000, [8192] * 4])
def test_metadata_asking_for_a_huge_head_is_refused(hidden):
    problem = metadata_problem(_payload(head_hidden=hidden))
    assert problem and "head_hidden" in problem


def test_metadata_with_a_usual_head_is_accepted():
    assert metadata_problem(_payload(head_hidden=[512, 128])) is None


def test_a_huge_head_checkpoint_is_refused_before_any_model_is_built(tmp_path, monkeypatch):
    from modelkit.serving.predictor import Predictor

    def build_model(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(registry, "build_model", build_model)
    path = tmp_path / "run" / "checkpoints" / "best.pt"
    save_checkpoint(path, _payload(head_hidden=[8192] * 400))
    assert path.stat().st_size < 20_000
    with pytest.raises(CheckpointError, match="metadata is not valid") as info:
        Predictor(path, device="cpu")
    assert str(path) in str(info.value) and "head_hidden" in str(info.value)
