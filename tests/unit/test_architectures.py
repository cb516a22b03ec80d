"""EfficientNet-B0..B3 and the small from-scratch ResNet in the registry."""

from __future__ import annotations

import pytest
import torch

from modelkit.models import registry as models
from modelkit.models.registry import WeightsError
from modelkit.runs.store import read_metrics
from modelkit.training.features import headless
from modelkit.training.loop import Trainer

NEW = ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "smallresnet"]


@pytest.mark.parametrize("arch", NEW)
def test_builds_with_our_head_and_runs_32px(arch):
    torch.manual_seed(0)
    model = models.build_model(arch, 4, "mlp", [16], 0.2).eval()
    head = models.head_module(model, arch)
    assert isinstance(head, torch.nn.Sequential) and head[-1].out_features == 4
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
        with headless(model, arch) as body:
            width = body(torch.randn(2, 3, 32, 32)).shape[1]
    assert head[0].in_features == width
    models.set_backbone_trainable(model, arch, False)
    names = {g["name"] for g in models.parameter_groups(model, arch, 0.1, None, 1e-4)}
    assert names == {"head", "head-no-decay"}


def test_efficientnet_imagenet_weights_fill_everything_but_the_head(monkeypatch):
    arch = "efficientnet_b0"
    reference = models.ARCHITECTURES[arch].build(weights=None).state_dict()
    monkeypatch.setattr(models, "imagenet_state_dict", lambda a: reference)
    model = models.build_model(arch, 3)
    assert "ImageNet" in models.load_starting_weights(model, arch, "imagenet")
    state = model.state_dict()
    body = [k for k in state if not k.startswith("classifier.")]
    assert all(torch.equal(state[k], reference[k]) for k in body)


def test_smallresnet_has_no_pretrained_weights():
    model = models.build_model("smallresnet", 3)
    with pytest.raises(WeightsError, match="smallresnet has no ImageNet weights"):
        models.load_starting_weights(model, "smallresnet", "imagenet")
    assert not models.imagenet_weights_cached("smallresnet")


def test_smallresnet_trains_an_epoch(make_config):
    result = Trainer(make_config(arch="smallresnet", epochs=1)).fit()
    assert result.state == "finished"
    assert len(read_metrics(result.run_dir)) == 1
