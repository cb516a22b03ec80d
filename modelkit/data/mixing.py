"""MixUp and CutMix on a normalised training batch, with soft targets (timm's ``Mixup``).

One mixing ratio per batch, drawn from Beta(alpha, alpha); the partner of each image is another
image of the same batch. With both on, each batch uses one of them, chosen at random, as timm
does. The targets become class probabilities, which ``nn.CrossEntropyLoss`` takes as they are
(label smoothing applies to them too). Draws come from the run's checkpointed generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class MixSettings:
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0

    @property
    def on(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mix_prob > 0


def _beta(alpha: float, g: torch.Generator) -> float:
    """Beta(alpha, alpha) seeded from ``g`` (torch's Beta distribution takes no generator)."""
    seed = int(torch.randint(2**62, (1,), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mix_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    s: MixSettings,
    g: torch.Generator,
    part: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mixed images, soft targets ``B x n_classes``). Unmixed batches get one-hot targets.
    ``part`` as in ``train_batch``: the same number of draws on every process."""
    one_hot = torch.nn.functional.one_hot(y.to(x.device), n_classes).float()
    if not s.on:
        return x, one_hot
    n = x.shape[0]
    off, total = part or (0, n)
    keys = torch.rand(total, generator=g)[off : off + n]
    partner = keys.argsort().to(x.device)  # a random pairing within this process's batch
    apply, pick_cutmix = torch.rand(2, generator=g).tolist()
    use_cutmix = s.cutmix_alpha > 0 and (s.mixup_alpha <= 0 or pick_cutmix < 0.5)
    alpha = s.cutmix_alpha if use_cutmix else s.mixup_alpha
    lam = _beta(alpha, g)
    box = torch.rand(2, generator=g).tolist()
    if apply >= s.mix_prob:
        return x, one_hot
    if use_cutmix:  # a box of area (1 - lam), clipped at the border; lam from the real area
        h, w = x.shape[2:]
        ch, cw = int(h * (1 - lam) ** 0.5), int(w * (1 - lam) ** 0.5)
        cy, cx = int(box[0] * h), int(box[1] * w)
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[partner][:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = x * lam + x[partner] * (1 - lam)
    return x, one_hot * lam + one_hot[partner] * (1 - lam)
