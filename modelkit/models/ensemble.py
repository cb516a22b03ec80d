"""An ensemble of 2-3 trained classifiers that is one model: the mean of their logits.

Each member keeps the architecture, head, input size and normalisation it was trained with. The
ensemble takes one input, preprocessed as its largest member's (square resize, centre crop, that
member's mean and std), and inside ``forward`` turns it into what each other member was trained
on: a per-channel scale and shift for another normalisation, then an antialiased bilinear resize
to the member's size. The resize is written as two matrix products whose matrices are PyTorch's
own antialiased bilinear kernel (``F.interpolate(antialias=True)`` applied to an identity), so it
equals that resize to float precision and exports to TorchScript, ONNX (opset 17 has no
antialiased Resize) and OpenVINO like any other layer. A crop of the largest size resized down is
the crop a smaller member saw in its own evaluation, since every size is cropped at 87.5%.

So everything that runs a model (the Predictor, export and its parity check, calibration,
Grad-CAM, evaluation) runs an ensemble unchanged. Its checkpoint holds the whole ensemble's
``state_dict`` as ``model`` and a ``members`` list describing each member (run, arch, head
settings, preprocessing): plain values, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from modelkit.models import registry as models

ENSEMBLE = "ensemble"  # the ``arch`` of an ensemble checkpoint
MIN_MEMBERS, MAX_MEMBERS = 2, 3


def resize_matrix(source: int, target: int) -> torch.Tensor:
    """``target x source``: M @ x @ M.T resizes a square x as antialiased bilinear does."""
    eye = torch.eye(source, dtype=torch.float64)[None, None]
    out = F.interpolate(
        eye, size=(target, source), mode="bilinear", antialias=True, align_corners=False
    )
    return out[0, 0].float()


class Ensemble(nn.Module):
    """The mean of its members' logits, each member fed the input it was trained on."""

    def __init__(
        self,
        members: Sequence[nn.Module],
        archs: Sequence[str],
        sizes: Sequence[int],
        norms: Sequence[tuple[Sequence[float], Sequence[float]]],
        input_size: int,
        input_norm: tuple[Sequence[float], Sequence[float]],
    ):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.archs, self.sizes, self.input_size = list(archs), list(sizes), int(input_size)
        mean_in, std_in = (torch.tensor(v, dtype=torch.float32) for v in input_norm)
        # what each member needs beyond the input: buffers rebuilt from the member list, so the
        # state_dict holds the members' weights only
        self._renorm, self._resize = [], []
        for i, (size, (mean, std)) in enumerate(zip(self.sizes, norms, strict=True)):
            mean_m, std_m = torch.tensor(mean), torch.tensor(std)
            renorm = not (torch.allclose(mean_m, mean_in) and torch.allclose(std_m, std_in))
            if renorm:  # (x * std_in + mean_in - mean_m) / std_m
                scale, shift = std_in / std_m, (mean_in - mean_m) / std_m
                self.register_buffer(f"scale{i}", scale.view(1, 3, 1, 1), persistent=False)
                self.register_buffer(f"shift{i}", shift.view(1, 3, 1, 1), persistent=False)
            if size != self.input_size:
                matrix = resize_matrix(self.input_size, size)
                self.register_buffer(f"rows{i}", matrix, persistent=False)
                self.register_buffer(f"cols{i}", matrix.t().contiguous(), persistent=False)
            self._renorm.append(renorm)
            self._resize.append(size != self.input_size)

    def member_input(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """The ensemble's input as member ``i`` was trained to see it."""
        if self._renorm[i]:
            x = x * getattr(self, f"scale{i}") + getattr(self, f"shift{i}")
        if self._resize[i]:
            x = torch.matmul(torch.matmul(getattr(self, f"rows{i}"), x), getattr(self, f"cols{i}"))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.members[0](self.member_input(x, 0)).float()
        for i in range(1, len(self.members)):
            total = total + self.members[i](self.member_input(x, i)).float()
        return total / len(self.members)


def member_model(arch: str, config: dict[str, Any], classes: int) -> nn.Module:
    """One classifier as its checkpoint's ``config`` describes its head (weights not loaded)."""
    return models.build_model(
        arch,
        classes,
        config.get("head", "linear"),
        config.get("head_hidden", []),
        config.get("head_dropout", 0.0),
    )


def ensemble_from_payload(payload: dict[str, Any]) -> Ensemble:
    """The (unloaded) Ensemble an ensemble checkpoint's ``members`` and ``preprocess`` describe."""
    classes = len(payload["classes"])
    members = payload["members"]
    pre = payload["preprocess"]
    return Ensemble(
        [member_model(m["arch"], m["config"], classes) for m in members],
        [m["arch"] for m in members],
        [int(m["preprocess"]["image_size"]) for m in members],
        [models.recorded_normalisation(m["preprocess"]) for m in members],
        int(pre["image_size"]),
        models.recorded_normalisation(pre),
    )


def ensemble_payload(payloads: Sequence[dict[str, Any]], runs: Sequence[str]) -> dict[str, Any]:
    """One checkpoint payload from its members' (same classes, in order), ``runs`` naming each.

    The input is the largest member's (a smaller one's crop is resized down from it, never a
    small crop up); test-time views and precision are the first member's."""
    first = payloads[0]
    largest = max(payloads, key=lambda p: int(p["preprocess"]["image_size"]))
    members = [
        {
            "run": run,
            "arch": p["arch"],
            "config": {
                "head": p["config"].get("head", "linear"),
                "head_hidden": list(p["config"].get("head_hidden", [])),
                "head_dropout": p["config"].get("head_dropout", 0.0),
            },
            "preprocess": {k: v for k, v in p["preprocess"].items() if k != "tta"},
        }
        for p, run in zip(payloads, runs, strict=True)
    ]
    payload = {
        "arch": ENSEMBLE,
        "classes": list(first["classes"]),
        "members": members,
        "preprocess": {**largest["preprocess"], "tta": first["preprocess"].get("tta", "none")},
    }
    ensemble = ensemble_from_payload(payload)
    for member, p in zip(ensemble.members, payloads, strict=True):
        member.load_state_dict(p["model"])
    payload["model"] = {k: v.detach().cpu() for k, v in ensemble.state_dict().items()}
    return payload
