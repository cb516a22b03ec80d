"""A small residual network for training from scratch on small images (32-64 px).

CIFAR-style: a 3x3 stem with no max-pool, three stages of two basic blocks (32, 64, 128 channels;
the 2nd and 3rd stages halve the resolution), global average pooling and ``fc``. About 0.7M
parameters, so it trains in minutes on a CPU where a ResNet-18 at 224 px would take hours.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torchvision.models.resnet import BasicBlock


class SmallResNet(nn.Module):
    def __init__(self, num_classes: int = 1000, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, width = [], widths[0]
        for i, out in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or width != out:
                down = nn.Sequential(
                    nn.Conv2d(width, out, 1, stride, bias=False), nn.BatchNorm2d(out)
                )
            stages.append(nn.Sequential(BasicBlock(width, out, stride, down), BasicBlock(out, out)))
            width = out
        self.stages = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: each starts as identity
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = self.avgpool(self.stages(self.stem(x)))
        return self.fc(x.flatten(1))


def smallresnet(weights: Any = None, **kwargs: Any) -> SmallResNet:
    """Registry builder; there are no pretrained weights (``weights`` must be None)."""
    if weights is not None:
        raise ValueError("smallresnet has no pretrained weights")
    return SmallResNet(**kwargs)
