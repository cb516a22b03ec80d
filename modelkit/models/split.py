"""A model cut in two after its first frozen stages: the prefix whose outputs can be cached, and
the rest, which trains on them.

With the first stages frozen (``frozen_stages``, BatchNorm statistics kept) the prefix is a fixed
function of the image, so its output for a given view never changes. Fine-tuning the rest on
those outputs, computed once per augmentation pass, skips most of the forward pass (epochs on
Lite1's cached maps in
benchmarks/results/time_to_accuracy_caltech101_15m_lite1_stage_maps_6_cpu2.json).

The cut relies on the model's forward being its children in order, flattened before the head,
which holds for every registry architecture (torchvision's ResNet and EfficientNet, SmallResNet);
``check_split`` verifies it on the real model before a run trusts the cut.
"""

from __future__ import annotations

import torch
from torch import nn

from modelkit.models.registry import head_module
from modelkit.models.stages import STAGE_CONTAINERS, backbone_stages


class Rest(nn.Module):
    """The layers after the cut and the head: the rest of the model's forward, sharing the
    model's own modules (training it trains the model)."""

    def __init__(self, body: list[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.body, self.head = nn.Sequential(*body), head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.body(x), 1))


def _in_order(model: nn.Module) -> list[nn.Module]:
    """The model's layers in forward order, its stage containers opened."""
    out: list[nn.Module] = []
    for name, child in model.named_children():
        out.extend(child.children() if name in STAGE_CONTAINERS else [child])
    return out


def split_model(model: nn.Module, arch: str, stages: int) -> tuple[nn.Sequential, Rest]:
    """(prefix, rest): the first ``stages`` backbone stages (as ``frozen_stages`` counts them)
    with the parameterless layers between them, and everything after. Both share the model's
    modules."""
    all_stages = backbone_stages(model, arch)
    if not 0 < stages < len(all_stages):
        raise ValueError(f"{arch} has {len(all_stages)} backbone stages: cannot cut after {stages}")
    first_kept = all_stages[stages][0]
    layers = _in_order(model)
    head = head_module(model, arch)
    cut = next(i for i, m in enumerate(layers) if m is first_kept)
    return nn.Sequential(*layers[:cut]), Rest([m for m in layers[cut:] if m is not head], head)


@torch.no_grad()
def check_split(model: nn.Module, prefix: nn.Module, rest: nn.Module, size: int = 64) -> bool:
    """True when ``rest(prefix(x))`` is the model's own output (checked in eval mode on two
    random images), i.e. the forward really is the children in order."""
    was = model.training
    model.eval()
    try:
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        x = x.to(next(model.parameters()).device)
        return bool(torch.allclose(rest(prefix(x)), model(x), atol=1e-4, rtol=1e-3))
    finally:
        model.train(was)
