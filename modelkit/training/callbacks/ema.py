"""EMA of the weights (timm's ``ModelEmaV3``, Ultralytics' ``ModelEMA``): an average of the
weights over the recent steps, which usually evaluates better and steadier than the live ones.

When on, every evaluation of the run (each epoch's validation, hence the best-checkpoint choice,
and the final evaluation) uses the EMA weights, and ``best.pt``'s ``model`` holds them, so a
prediction from the run uses the weights that were judged best. ``last.pt``'s ``model`` keeps
the live weights (training continues from them) and the EMA weights travel in its callback
state, so a resumed run has the exact average an uninterrupted one would.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from modelkit.training.callbacks.base import TECHNIQUE, Callback, Trainer


def ema_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (1-based), warmed up as timm and TensorFlow do:
    early averages forget their random start quickly."""
    return min(decay, (1 + updates) / (10 + updates))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for float weights and buffers; others (the
    BatchNorm step counter) are copied. One fused ``lerp`` over all float tensors (as timm's
    ModelEmaV3): a loop of two ops per tensor cost 8 ms a step for ResNet-18, 2.5% of a
    64 px step on a CPU."""
    live = model.state_dict()
    averaged, current = [], []
    for name, value in ema.state_dict().items():
        if value.dtype.is_floating_point:
            averaged.append(value)
            current.append(live[name].detach())
        else:
            value.copy_(live[name])
    if averaged:
        torch._foreach_lerp_(averaged, current, 1 - decay)


class EMA(Callback):
    order = TECHNIQUE

    def __init__(self, decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.saved: dict[str, Any] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        ema = copy.deepcopy(trainer.model).eval()
        for p in ema.parameters():
            p.requires_grad_(False)
        if self.saved is not None:  # resumed: the average continues where it was
            ema.load_state_dict(self.saved["weights"])
            self.updates = int(self.saved["updates"])
        trainer.ema_model, self.model = ema, ema

    def on_batch_end(self, trainer: Trainer, epoch: int, batch: int, loss: float) -> None:
        self.updates += 1
        ema_update(self.model, trainer.model, ema_decay(self.decay, self.updates))

    def state_dict(self) -> dict[str, Any]:
        if not hasattr(self, "model"):
            return {}
        weights = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return {"updates": self.updates, "weights": weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.saved = state
