"""TrainConfig: every knob of a training run, validated up front and saved with the run.

One flat dataclass keeps the CLI, the app form and the JSON on disk in step: each field is a
CLI flag and a form widget, and ``from_dict`` refuses unknown keys and wrong types with one
clear message.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelkit.errors import ModelkitError

ARCHITECTURES_HINT = "see modelkit.models.registry.ARCHITECTURES"
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine", "onecycle", "plateau")
HEADS = ("linear", "mlp")
MONITORS = ("val_loss", "val_acc")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ModelkitError, ValueError):
    """Raised with every problem of a config at once, one per line."""


@dataclass
class TrainConfig:
    # data
    data_dir: str = ""
    val_ratio: float = 0.2
    test_ratio: float = 0.0
    # model and weights
    arch: str = "resnet18"
    weights: str = "imagenet"  # "imagenet", "none", or a path to a checkpoint / state_dict file
    head: str = "linear"
    head_hidden: list[int] = field(default_factory=lambda: [256])
    head_dropout: float = 0.0
    freeze_backbone: bool = False
    # input
    image_size: int = 224
    batch_size: int = 32
    epochs: int = 10
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.01
    backbone_lr: float | None = None  # None: same as lr
    # Two-phase fine-tuning: the first head_epochs epochs train the head alone (backbone frozen),
    # then everything trains at finetune_lr (None: lr / 10), the backbone at backbone_lr (None:
    # finetune_lr). 0 turns it off.
    head_epochs: int = 0
    finetune_lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 turns clipping off
    # schedule
    scheduler: str = "cosine"
    step_size: int = 5
    gamma: float = 0.1
    plateau_patience: int = 2
    # stopping
    early_stopping_patience: int = 0  # epochs without improvement; 0 turns it off
    monitor: str = "val_loss"
    # augmentation (training only; evaluation is resize + centre crop)
    crop_scale_min: float = 0.35
    crop_scale_max: float = 1.0
    hflip: bool = True
    vflip: bool = False
    rotation: float = 0.0  # degrees, +/-
    shear: float = 0.0  # degrees, +/-
    zoom: float = 0.0  # +/- fraction, 0.1 means 0.9x..1.1x
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0  # fraction of a full turn, at most 0.5
    # compute
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    cache_ram_mb: int = 4096  # decode cache above this goes to a memory-mapped file
    # With a frozen backbone: compute its features once (per augmentation pass) and train the
    # head on them. Passes apply only when augmentation is on; epoch e uses pass e % passes.
    feature_cache: bool = True
    feature_passes: int = 3
    # TensorBoard event files in runs/<id>/tensorboard/ (when the tensorboard package is there)
    tensorboard: bool = True
    # bookkeeping
    seed: int = 0
    runs_dir: str = "runs"
    run_name: str = ""

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError listing every problem: wrong types first, then values out of range
        (a field with a wrong type is not range-checked, so each field is named once)."""
        type_problems = _type_problems(self)
        p = list(type_problems.values())

        def need(names: str, ok: Callable[[], bool], msg: str) -> None:
            if type_problems.keys().isdisjoint(names.split()) and not ok():
                p.append(msg)

        from modelkit.models.registry import ARCHITECTURES  # late: models imports torch

        need(
            "arch",
            lambda: self.arch in ARCHITECTURES,
            f"arch: {self.arch!r} is not one of {sorted(ARCHITECTURES)}",
        )
        need("val_ratio", lambda: 0 <= self.val_ratio < 1, "val_ratio: must be in [0, 1)")
        need("test_ratio", lambda: 0 <= self.test_ratio < 1, "test_ratio: must be in [0, 1)")
        need(
            "val_ratio test_ratio",
            lambda: self.val_ratio + self.test_ratio < 1,
            "val_ratio + test_ratio: must be below 1",
        )
        need("head", lambda: self.head in HEADS, f"head: must be one of {HEADS}")
        need(
            "head_hidden",
            lambda: all(h > 0 for h in self.head_hidden),
            "head_hidden: sizes must be positive",
        )
        need("head_dropout", lambda: 0 <= self.head_dropout < 1, "head_dropout: must be in [0, 1)")
        need(
            "image_size",
            lambda: 16 <= self.image_size <= 1024,
            "image_size: must be between 16 and 1024 pixels",
        )
        need(
            "batch_size",
            lambda: 1 <= self.batch_size <= 4096,
            "batch_size: must be between 1 and 4096",
        )
        need("epochs", lambda: 1 <= self.epochs <= 10000, "epochs: must be between 1 and 10000")
        need(
            "optimizer",
            lambda: self.optimizer in OPTIMIZERS,
            f"optimizer: must be one of {OPTIMIZERS}",
        )
        need("lr", lambda: 0 < self.lr <= 10, "lr: must be in (0, 10]")
        need(
            "backbone_lr",
            lambda: self.backbone_lr is None or 0 <= self.backbone_lr <= 10,
            "backbone_lr: must be in [0, 10]",
        )
        need("momentum", lambda: 0 <= self.momentum < 1, "momentum: must be in [0, 1)")
        need("weight_decay", lambda: self.weight_decay >= 0, "weight_decay: must be >= 0")
        need(
            "label_smoothing",
            lambda: 0 <= self.label_smoothing < 1,
            "label_smoothing: must be in [0, 1)",
        )
        need("grad_clip", lambda: self.grad_clip >= 0, "grad_clip: must be >= 0 (0 turns it off)")
        need(
            "scheduler",
            lambda: self.scheduler in SCHEDULERS,
            f"scheduler: must be one of {SCHEDULERS}",
        )
        need("step_size", lambda: self.step_size >= 1, "step_size: must be >= 1")
        need("gamma", lambda: 0 < self.gamma <= 1, "gamma: must be in (0, 1]")
        need(
            "plateau_patience",
            lambda: self.plateau_patience >= 0,
            "plateau_patience: must be >= 0",
        )
        need(
            "early_stopping_patience",
            lambda: self.early_stopping_patience >= 0,
            "early_stopping_patience: must be >= 0",
        )
        need("monitor", lambda: self.monitor in MONITORS, f"monitor: must be one of {MONITORS}")
        need(
            "crop_scale_min crop_scale_max",
            lambda: 0 < self.crop_scale_min <= self.crop_scale_max <= 1,
            "crop_scale_min/max: need 0 < min <= max <= 1",
        )
        need("rotation", lambda: 0 <= self.rotation <= 180, "rotation: must be in [0, 180] degrees")
        need("shear", lambda: 0 <= self.shear <= 45, "shear: must be in [0, 45] degrees")
        need("zoom", lambda: 0 <= self.zoom < 1, "zoom: must be in [0, 1)")
        for name in ("brightness", "contrast", "saturation"):
            need(name, lambda n=name: 0 <= getattr(self, n) <= 1, f"{name}: must be in [0, 1]")
        need("hue", lambda: 0 <= self.hue <= 0.5, "hue: must be in [0, 0.5]")
        need("device", lambda: self.device in DEVICES, f"device: must be one of {DEVICES}")
        need(
            "precision",
            lambda: self.precision in PRECISIONS,
            f"precision: must be one of {PRECISIONS}",
        )
        need("cache_ram_mb", lambda: self.cache_ram_mb >= 0, "cache_ram_mb: must be >= 0")
        need("feature_passes", lambda: 1 <= self.feature_passes <= 100, "feature_passes: 1..100")
        need(
            "head_epochs epochs",
            lambda: 0 <= self.head_epochs < self.epochs,
            "head_epochs: must be >= 0 and below epochs (phase 2 needs at least one epoch)",
        )
        need(
            "head_epochs freeze_backbone",
            lambda: not (self.head_epochs and self.freeze_backbone),
            "head_epochs: two-phase fine-tuning unfreezes the backbone; turn freeze_backbone off",
        )
        need(
            "finetune_lr",
            lambda: self.finetune_lr is None or 0 < self.finetune_lr <= 10,
            "finetune_lr: must be in (0, 10]",
        )
        need("seed", lambda: self.seed >= 0, "seed: must be >= 0")
        if p:
            raise ConfigError("\n".join(p))

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        problems = [f"config: unknown keys {unknown}"] if unknown else []
        try:
            config = cls(**{k: v for k, v in data.items() if k in known})
        except ConfigError as exc:
            problems += str(exc).splitlines()
        if problems:  # every problem at once: unknown keys, wrong types, values out of range
            raise ConfigError("\n".join(problems))
        return config

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config ({exc})") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def _type_problems(cfg: TrainConfig) -> dict[str, str]:
    """Check field types by hand: JSON and form input arrive untyped, and a string epoch count
    should say so, not fail deep inside the loop. Ints are accepted where floats are expected
    (and stored as floats). Returns {field: problem}."""
    hints = typing.get_type_hints(TrainConfig)
    problems = {}
    for f in dataclasses.fields(cfg):
        value, hint = getattr(cfg, f.name), hints[f.name]
        if not _matches(value, hint):
            problems[f.name] = (
                f"{f.name}: expected {_hint_name(hint)}, got {type(value).__name__} {value!r}"
            )
        elif isinstance(value, int) and not isinstance(value, bool) and _accepts_float(hint):
            setattr(cfg, f.name, float(value))
    return problems


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _accepts_float(hint: Any) -> bool:
    return hint is float or (_is_union(hint) and float in typing.get_args(hint))


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if _is_union(hint):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return isinstance(value, hint)


def _hint_name(hint: Any) -> str:
    return str(hint).replace("typing.", "") if typing.get_origin(hint) else hint.__name__
