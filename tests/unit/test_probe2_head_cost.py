"""A checkpoint's head is costed whole before its model is built (issue #29, second probe): a
1.6 MB checkpoint of 100,000 classes after a hidden layer of 8192 peaked at 3.9 GB and failed
only at load_state_dict. Every weight counts: the backbone's features into the first hidden
layer, between hidden layers, the last one into the classes, and features into classes for a
linear head."""

from __future__ import annotations

import pytest
import torch

from modelkit.config import TrainConfig
from modelkit.config.rules import MAX_HEAD_TOTAL, head_problem, head_widths
from modelkit.models import registry
from modelkit.models.checkpoint import CheckpointError, save_checkpoint
from modelkit.models.metadata import feature_width, metadata_problem

CLASSES = [f"c{i:05d}" for i in range(100_000)]


def _payload(classes: list[str], arch: str = "resnet18", **config) -> dict:
    return {
        "format": "modelkit",
        "format_version": 1,
        "model": {},
        "arch": arch,
        "classes": classes,
        "config": {"head_dropout": 0.0, **config},
        "preprocess": {"image_size": 32, "resize_size": 37},
    }


def test_the_feature_width_is_the_one_the_built_head_takes():
    for arch in ("resnet18", "resnet50", "efficientnet_lite0", "smallresnet"):
        model = registry.build_model(arch, 3)
        head = registry.head_module(model, arch)
        assert feature_width(arch) == registry.head_in_features(head), arch


def test_many_classes_after_a_wide_hidden_layer_are_refused_naming_what_costs():
    problem = metadata_problem(_payload(CLASSES, head="mlp", head_hidden=[8192]))
    assert problem is not None
    assert "100,000 classes" in problem and "512 features" in problem and "8,192" in problem
    assert f"{MAX_HEAD_TOTAL:,}" in problem


def test_a_linear_head_counts_features_into_classes_and_ignores_hidden():
    # 2048 x 100,000: the widest linear head there is, at the bound
    linear = _payload(CLASSES, "resnet50", head="linear", head_hidden=[8192])
    assert metadata_problem(linear) is None
    assert head_problem([], "linear", 2048, 100_000) is None
    assert head_problem([], "linear", 2049, 100_000) is not None
    # hidden widths are what an mlp head builds: counted there, from the features on
    assert head_problem([8192], "mlp", 2048, 100_000) is not None


def test_the_count_is_the_weights_the_head_has():
    for kind, hidden in (("mlp", [300, 70]), ("linear", [300])):
        head = registry.make_head(512, 1000, kind, hidden, 0.0)
        weights = sum(m.weight.numel() for m in head.modules() if isinstance(m, torch.nn.Linear))
        widths = head_widths(hidden, kind, 512, 1000)
        assert weights == sum(a * b for a, b in zip(widths, widths[1:]))


def test_such_a_checkpoint_is_refused_by_name_before_its_model_is_built(tmp_path, monkeypatch):
    from modelkit.serving.predictor import Predictor

    def build_model(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(registry, "build_model", build_model)
    path = tmp_path / "run" / "checkpoints" / "best.pt"
    save_checkpoint(path, _payload(CLASSES, head="mlp", head_hidden=[8192]))
    with pytest.raises(CheckpointError, match="metadata is not valid") as info:
        Predictor(path, device="cpu")
    assert str(path) in str(info.value) and "100,000 classes" in str(info.value)


def test_usual_heads_stay_valid():
    assert metadata_problem(_payload(["a", "b"], head="mlp", head_hidden=[8192, 8192])) is None
    assert (
        metadata_problem(_payload(CLASSES[:1000], "resnet50", head="mlp", head_hidden=[2048]))
        is None
    )
    TrainConfig.from_dict({"arch": "resnet50", "head": "mlp", "head_hidden": [8192, 8192]})
