"""EfficientNet-B0..B3 and the small from-scratch ResNets in the registry."""

from __future__ import annotations

import pytest
import torch

from modelkit.models import registry as models
from modelkit.models import stages
from modelkit.models.registry import WeightsError
from modelkit.runs.store import read_metrics
from modelkit.training.features import headless
from modelkit.training.loop import Trainer

NEW = ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "smallresnet"]
NEW += ["resnet18_half"]
FROM_SCRATCH = ["smallresnet", "resnet18_half"]


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
    stages.set_backbone_trainable(model, arch, False)
    names = {g["name"] for g in stages.parameter_groups(model, arch, 0.1, None, 1e-4)}
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


@pytest.mark.parametrize("arch", FROM_SCRATCH)
def test_the_small_resnets_have_no_pretrained_weights(arch):
    model = models.build_model(arch, 3)
    with pytest.raises(WeightsError, match=f"{arch} has no ImageNet weights"):
        models.load_starting_weights(model, arch, "imagenet")
    assert not models.imagenet_weights_cached(arch)


@pytest.mark.parametrize("arch", FROM_SCRATCH)
def test_the_small_resnets_train_an_epoch(make_config, arch):
    result = Trainer(make_config(arch=arch, epochs=1)).fit()
    assert result.state == "finished"
    assert len(read_metrics(result.run_dir)) == 1
