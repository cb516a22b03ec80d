"""A backbone's stages, input side first, and what training does with them: freeze a prefix,
keep its BatchNorm statistics, give backbone and head their own learning rates."""

from __future__ import annotations

from typing import Any

from torch import nn

from modelkit.models.registry import head_module

STAGE_CONTAINERS = ("features", "stages")  # Sequentials whose children are the stages


def backbone_stages(model: nn.Module, arch: str) -> list[list[nn.Module]]:
    """The backbone's stages, input side first (what ``frozen_stages`` counts): the stem (the
    loose layers before the first block), then each block group (ResNet's layer1-4, EfficientNet's
    features[1:])."""
    head = head_module(model, arch)
    stages: list[list[nn.Module]] = []
    loose: list[nn.Module] = []
    for name, child in model.named_children():
        if child is head or not any(True for _ in child.parameters()):
            continue
        if name in STAGE_CONTAINERS:
            parts = [[c] for c in child.children() if any(True for _ in c.parameters())]
        elif isinstance(child, nn.Sequential):
            parts = [[child]]
        else:
            loose.append(child)
            continue
        if loose:
            stages.append(loose)
            loose = []
        stages.extend(parts)
    return stages + ([loose] if loose else [])


def frozen_prefix(model: nn.Module, arch: str, frozen_stages: int) -> list[nn.Module]:
    """The modules of the first ``frozen_stages`` stages; a clear error when that is all."""
    stages = backbone_stages(model, arch)
    if frozen_stages >= len(stages):
        raise ValueError(
            f"{arch} has {len(stages)} backbone stages: freezing {frozen_stages} leaves none to "
            "fine-tune (freeze the whole backbone instead)"
        )
    return [m for stage in stages[:frozen_stages] for m in stage]


def set_backbone_trainable(
    model: nn.Module, arch: str, trainable: bool, frozen_stages: int = 0
) -> None:
    """Backbone trainable or not; the first ``frozen_stages`` stages stay frozen either way
    (partial fine-tuning: the input-side layers hold generic features, and skipping their
    backward is most of the cost saved on a CPU)."""
    head = head_module(model, arch)
    head_params = {id(p) for p in head.parameters()}
    for p in model.parameters():
        if id(p) not in head_params:
            p.requires_grad_(trainable)
    for m in frozen_prefix(model, arch, frozen_stages) if trainable else []:
        m.requires_grad_(False)


def freeze_batchnorm(model: nn.Module, arch: str, frozen_stages: int | None = None) -> None:
    """Keep a frozen backbone's BatchNorm statistics fixed (all of it, or its first
    ``frozen_stages`` stages): call after every ``model.train()``."""
    if frozen_stages is None:
        head_modules = set(head_module(model, arch).modules())
        parts = [m for m in model.modules() if m not in head_modules]
    else:
        parts = [m for top in frozen_prefix(model, arch, frozen_stages) for m in top.modules()]
    for m in parts:
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def parameter_groups(
    model: nn.Module, arch: str, lr: float, backbone_lr: float | None, weight_decay: float
) -> list[dict[str, Any]]:
    """Backbone and head as separate groups, so each gets its own learning rate; biases and norm
    weights get no weight decay (the usual recipe, and it matters on small data)."""
    head_ids = {id(p) for p in head_module(model, arch).parameters()}
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        part = "head" if id(p) in head_ids else "backbone"
        groups.setdefault((part, p.ndim <= 1), []).append(p)
    out = []
    for (part, no_decay), params in sorted(groups.items()):
        group_lr = lr if part == "head" or backbone_lr is None else backbone_lr
        out.append(
            {
                "params": params,
                "lr": group_lr,
                "weight_decay": 0.0 if no_decay else weight_decay,
                "name": f"{part}{'-no-decay' if no_decay else ''}",
            }
        )
    return out
