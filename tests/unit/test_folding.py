"""BatchNorm folding for inference: same predictions, and the trained model left as it was."""

import pytest
import torch
from torch import nn

from modelkit.models.folding import folded_copy
from modelkit.models.registry import ARCHITECTURES, build_model


def _with_statistics(model: nn.Module) -> nn.Module:
    """Running statistics and affine terms that are not the identity, as after training."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_folded_copy_predicts_what_the_model_predicts_without_batchnorm(arch):
    model = _with_statistics(build_model(arch, 5))
    folded = folded_copy(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert torch.allclose(got, expected, atol=1e-3, rtol=1e-3), (got - expected).abs().max()


def test_the_model_that_trains_keeps_its_batchnorm_and_its_mode():
    model = _with_statistics(build_model("resnet18", 3)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded_copy(model)
    assert model.training
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
