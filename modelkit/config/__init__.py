"""TrainConfig: every knob of a training run, declared once, validated up front, saved with the run.

Each field is declared with ``setting(default, help, group, label=…, bounds=…, choices=…)``
(see ``modelkit.config.declare``): validation, the CLI flags (``modelkit.cli.config_flags``) and
the app's Train form (``studio.config_form``) are generated from that one declaration.
``from_dict`` refuses unknown keys and wrong types, naming every bad field at once.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelkit.config.declare import GROUPS, Setting, setting, settings_of
from modelkit.errors import ModelkitError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine", "onecycle", "plateau")
HEADS = ("linear", "mlp")
MONITORS = ("val_loss", "val_acc")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda", "mps")
AUTO_AUGMENTS = ("none", "trivialaugment", "randaugment")
CLASS_BALANCES = ("auto", "none", "sqrt_weighted_loss", "weighted_loss", "sampler")
TTAS = ("none", "flip", "flip_crops")
# Fields the app addresses by their role: the learning-rate finder suggests the learning rate;
# the Tune page asks how many epochs the full run of the best trial trains.
LR_FINDER_FIELD = "lr"
EPOCHS_FIELD = "epochs"
__all__ = ["GROUPS", "ConfigError", "Setting", "TrainConfig", "schema"]


class ConfigError(ModelkitError, ValueError):
    """Raised with every problem of a config at once, one per line."""


def _architectures() -> tuple[str, ...]:
    from modelkit.models.registry import ARCHITECTURES  # late: models imports torch

    return tuple(ARCHITECTURES)


@dataclass(frozen=True)
class TrainConfig:
    # One block per field: default, group, label, then its range or choices and its help.
    # fmt: off
    # -- data
    data_dir: str = setting(
        "", "data", "Dataset folder", essential=True, widget="dataset",
        help="Dataset folder: DATA/<class>/… or DATA/train|val/<class>/….",
    )
    val_ratio: float = setting(
        0.2, "data", "Validation share", bounds="[0, 1)", step=0.05,
        help="Share of each class folder held out for validation (ignored when the folder "
        "already has train/ and val/).",
    )
    test_ratio: float = setting(
        0.0, "data", "Test share", bounds="[0, 1)", step=0.05,
        help="Share of each class folder held out for a final test.",
    )
    # -- model and weights
    arch: str = setting(
        "resnet18", "model", "Architecture", choices=_architectures, essential=True,
        widget="architecture",
        help="Network architecture. Bigger is slower; resnet18 is a good start.",
    )
    weights: str = setting(
        "imagenet", "model", "Starting weights", essential=True, widget="starting_weights",
        help="Starting weights: 'imagenet' (downloaded once into the torch cache), 'none' "
        "(random), or a checkpoint / state_dict file or run folder.",
    )
    head: str = setting(
        "linear", "model", "Head", choices=HEADS,
        help="Classifier head. linear: one layer. mlp: hidden layers with ReLU.",
    )
    head_hidden: list[int] = setting(
        [256], "model", "Hidden sizes (mlp)", bounds="[1, 8192]",
        help="Hidden layer sizes of the mlp head, comma-separated, e.g. 512,128.",
    )
    head_dropout: float = setting(
        0.0, "model", "Dropout", bounds="[0, 1)", step=0.05,
        help="Dropout before the head's last layer.",
    )
    freeze_backbone: bool = setting(
        False, "model", "Freeze the backbone (train the head only)",
        help="Train the head only. Much faster; good with ImageNet weights and very few images.",
    )
    frozen_stages: int = setting(
        0, "model", "Frozen stages when fine-tuning", bounds="[0, 16]",
        help="Fine-tuning: keep the first N stages of the backbone (stem first) frozen, "
        "BatchNorm too. Their generic features stay; training is about 2x faster on a CPU.",
    )
    cache_frozen_stages: bool = setting(
        False, "model", "Cache the frozen stages' outputs",
        help="With frozen stages: compute their outputs once per augmentation pass (centre "
        "crop, mirror image, then random views up to the passes to cache) and fine-tune the "
        "rest on them. Several times faster on a CPU; augmentation is limited to those passes.",
    )
    freeze_bn: bool = setting(
        False, "model", "Keep BatchNorm statistics fixed when fine-tuning",
        help="Fine-tuning: the backbone's BatchNorm keeps its pretrained statistics (its scale and "
        "shift still train). Small batches of augmented crops otherwise shift them, and accuracy "
        "drops in the first fine-tuning epoch.",
    )
    # -- optimisation
    image_size: int = setting(
        224, "data", "Image size (px)", bounds="[16, 1024]", step=16, essential=True,
        help="Side of the square the images are resized to. Smaller trains much faster on a "
        "CPU; 224 is ImageNet's size.",
    )
    eval_size: int = setting(
        0, "data", "Evaluation size (px, 0 = image size)", bounds="[0, 1024]", step=16,
        help="Evaluate and predict at this size, e.g. above the training size (FixRes).",
    )
    tta: str = setting(
        "none", "data", "Test-time augmentation", choices=TTAS,
        help="Average the logits over flipped (and corner-cropped) views when evaluating and "
        "predicting.",
    )
    progressive_resize: bool = setting(
        False, "data", "Progressive resizing", help="Train at small sizes first, growing to the "
        "image size for the last quarter of the epochs.",
    )
    progressive_min_size: int = setting(
        64, "data", "Progressive resizing: first size (px)", bounds="[16, 1024]", step=16,
        help="Progressive resizing: the size of the first epoch.",
    )
    batch_size: int = setting(
        32, "optimisation", "Batch size", bounds="[1, 4096]", essential=True,
        help="Images per step (with several GPUs: the global batch).",
    )
    epochs: int = setting(
        10, "optimisation", "Epochs", bounds="[1, 10000]", essential=True,
        help="Passes over the training images.",
    )
    optimizer: str = setting(
        "sgd", "optimisation", "Optimizer", choices=OPTIMIZERS,
        help="sgd with momentum, adam or adamw.",
    )
    lr: float = setting(
        0.01, "optimisation", "Learning rate", bounds="(0, 10]", step=1e-4, essential=True,
        help="Learning rate (the Find a learning rate button suggests one).",
    )
    backbone_lr: float | None = setting(
        None, "optimisation", "Backbone learning rate", bounds="[0, 10]", step=1e-4,
        help="A lower rate for the pretrained layers often helps. Empty: same as the learning "
        "rate (two-phase: the fine-tuning rate).",
    )
    head_epochs: int = setting(
        0, "optimisation", "Head-only epochs first (0 = off)", bounds="[0, 10000]",
        help="Two-phase fine-tuning: train the head alone on a frozen backbone for these "
        "epochs, then unfreeze everything and fine-tune at the fine-tuning rate. 0 turns it "
        "off.",
    )
    finetune_lr: float | None = setting(
        None, "optimisation", "Fine-tuning learning rate", bounds="(0, 10]", step=1e-4,
        help="Learning rate of phase 2 in two-phase fine-tuning. Empty: learning rate / 10.",
    )
    momentum: float = setting(
        0.9, "optimisation", "Momentum (SGD)", bounds="[0, 1)", step=0.01,
        help="Momentum of SGD.",
    )
    weight_decay: float = setting(
        1e-4, "optimisation", "Weight decay", bounds="[0, inf)", step=1e-4,
        help="L2 penalty on the weights.",
    )
    label_smoothing: float = setting(
        0.0, "optimisation", "Label smoothing", bounds="[0, 1)", step=0.05,
        help="Soften the one-hot targets; helps with noisy labels.",
    )
    grad_clip: float = setting(
        0.0, "optimisation", "Gradient clipping (max norm, 0 = off)", bounds="[0, inf)", step=0.5,
        help="Largest gradient norm; 0 turns clipping off.",
    )
    ema: bool = setting(
        False, "optimisation", "EMA of the weights", help="Evaluate and keep an exponential "
        "moving average of the weights (timm/Ultralytics ModelEMA); often a steadier model.",
    )
    ema_decay: float = setting(
        0.999, "optimisation", "EMA decay", bounds="(0, 1)", step=0.001,
        help="EMA: share of the average kept at each step (warmed up over the first steps).",
    )
    mixup_alpha: float = setting(
        0.0, "optimisation", "MixUp alpha (0 = off)", bounds="[0, inf)", step=0.1,
        help="MixUp: blend pairs of images and their labels, Beta(alpha, alpha); 0.2 is usual.",
    )
    cutmix_alpha: float = setting(
        0.0, "optimisation", "CutMix alpha (0 = off)", bounds="[0, inf)", step=0.1,
        help="CutMix: paste a box of another image, labels by area; with MixUp on, one per batch.",
    )
    mix_prob: float = setting(
        1.0, "optimisation", "MixUp/CutMix probability", bounds="[0, 1]", step=0.05,
        help="Share of the batches MixUp/CutMix is applied to.",
    )
    class_balance: str = setting(
        "auto", "optimisation", "Class balance", choices=CLASS_BALANCES,
        help="Imbalanced classes: a loss weighted by 1/sqrt(class size) or 1/(class size), or "
        "a balanced sampler; auto picks sqrt_weighted_loss when the largest class has over 3x "
        "the images of the smallest.",
    )
    # -- schedule
    scheduler: str = setting(
        "cosine", "schedule", "Schedule", choices=SCHEDULERS,
        help="How the learning rate changes over the epochs.",
    )
    step_size: int = setting(
        5, "schedule", "Step size (epochs)", bounds="[1, inf)",
        help="step schedule: epochs between decays.",
    )
    gamma: float = setting(
        0.1, "schedule", "Gamma (decay factor)", bounds="(0, 1]", step=0.05,
        help="step and plateau schedules: the factor the rate is multiplied by.",
    )
    plateau_patience: int = setting(
        2, "schedule", "Plateau patience", bounds="[0, inf)",
        help="plateau schedule: epochs without improvement before the rate drops.",
    )
    warmup_epochs: float = setting(
        0.0, "schedule", "Warmup epochs", bounds="[0, inf)", step=0.5,
        help="Raise the learning rate linearly from ~0 over these epochs (onecycle: its own "
        "warm-up phase lasts this long).",
    )
    # -- stopping
    early_stopping_patience: int = setting(
        0, "stopping", "Early stopping patience (0 = off)", bounds="[0, inf)",
        help="Stop after this many epochs without improvement; 0 turns it off.",
    )
    monitor: str = setting(
        "val_loss", "stopping", "Watch", choices=MONITORS,
        help="What early stopping, the plateau schedule and the best checkpoint watch.",
    )
    time_budget: float = setting(
        0.0, "stopping", "Time budget", bounds="[0, inf)", step=60.0, parse="duration",
        help="Wall-clock time the whole run may take, decoding included, typed as 90s, 10m or "
        "1h30m (in Python, seconds; 0 or empty: none): "
        "the first batches are timed, then the epochs (at most those asked for) and the schedule "
        "are fitted to end on time.",
    )
    # -- augmentation (training only; evaluation is resize + centre crop)
    crop_scale_min: float = setting(
        0.35, "augmentation", "Random crop: smallest area kept", bounds="(0, 1]", step=0.05,
        help="Random crop: the smallest share of the image area kept.",
    )
    crop_scale_max: float = setting(
        1.0, "augmentation", "Random crop: largest area kept", bounds="(0, 1]", step=0.05,
        help="Random crop: the largest share of the image area kept.",
    )
    hflip: bool = setting(
        True, "augmentation", "Horizontal flip",
        help="Mirror left-right at random.",
    )
    vflip: bool = setting(
        False, "augmentation", "Vertical flip",
        help="Flip upside down at random; for photos with no up and down.",
    )
    rotation: float = setting(
        0.0, "augmentation", "Rotation ±°", bounds="[0, 180]", step=1.0,
        help="Rotate by up to this many degrees either way.",
    )
    shear: float = setting(
        0.0, "augmentation", "Shear ±°", bounds="[0, 45]", step=1.0,
        help="Shear by up to this many degrees either way.",
    )
    zoom: float = setting(
        0.0, "augmentation", "Zoom ±", bounds="[0, 1)", step=0.05,
        help="Zoom in or out by up to this fraction: 0.1 means 0.9x..1.1x.",
    )
    brightness: float = setting(
        0.0, "augmentation", "Brightness", bounds="[0, 1]", step=0.05,
        help="Colour jitter: brightness change, up to this fraction.",
    )
    contrast: float = setting(
        0.0, "augmentation", "Contrast", bounds="[0, 1]", step=0.05,
        help="Colour jitter: contrast change, up to this fraction.",
    )
    saturation: float = setting(
        0.0, "augmentation", "Saturation", bounds="[0, 1]", step=0.05,
        help="Colour jitter: saturation change, up to this fraction.",
    )
    hue: float = setting(
        0.0, "augmentation", "Hue", bounds="[0, 0.5]", step=0.01,
        help="Colour jitter: hue shift, as a fraction of a full turn.",
    )
    auto_augment: str = setting(
        "none", "augmentation", "Automatic augmentation", choices=AUTO_AUGMENTS,
        help="TrivialAugmentWide or RandAugment (2 ops) on each image of the batch.",
    )
    randaugment_magnitude: int = setting(
        9, "augmentation", "RandAugment magnitude", bounds="[0, 30]",
        help="RandAugment: strength of its operations, 0..30.",
    )
    # -- compute
    device: str = setting(
        "auto", "compute", "Device", choices=DEVICES,
        help="Where to train; auto picks a GPU when there is one.",
    )
    precision: str = setting(
        "auto", "compute", "Precision", choices=PRECISIONS,
        help="auto: bf16 on GPUs and on CPUs with native bf16; fp16 needs a GPU.",
    )
    channels_last: bool = setting(
        True, "compute", "channels_last memory layout",
        help="Memory layout that is faster on most GPUs and CPUs.",
    )
    compile: bool = setting(
        False, "compute", "torch.compile",
        help="torch.compile the model: a slow first epoch, maybe faster after; measure it.",
    )
    cache_ram_mb: int = setting(
        4096, "compute", "Decode cache in RAM (MB)", bounds="[0, inf)", step=256,
        help="Decoded images up to this many MB stay in RAM; the rest go to a memory-mapped "
        "file.",
    )
    feature_cache: bool = setting(
        True, "compute", "Cache backbone features",
        help="With a frozen backbone: compute its features once per augmentation pass and train "
        "the head on them; epochs then take a fraction of a second.",
    )
    feature_passes: int = setting(
        3, "compute", "Augmentation passes to cache", bounds="[1, 100]",
        help="Frozen backbone with augmentation: how many versions of each image to cache "
        "(the centre crop, its mirror image, then random views); epoch e uses pass e % passes.",
    )
    # -- bookkeeping
    tensorboard: bool = setting(
        True, "bookkeeping", "TensorBoard logs",
        help="Write TensorBoard event files to runs/<id>/tensorboard/ (when the tensorboard "
        "package is installed).",
    )
    seed: int = setting(
        0, "bookkeeping", "Seed", bounds="[0, inf)",
        help="Seed of the split, the initial weights and the augmentation.",
    )
    runs_dir: str = setting(
        "runs", "bookkeeping", "Runs folder", widget="runs_folder",
        help="Folder the run folder is created in.",
    )
    run_name: str = setting(
        "", "bookkeeping", "Run name",
        help="Optional name, part of the run folder's name.",
    )
    # fmt: on

    def __post_init__(self) -> None:
        # frozen: what was asked never changes (a run's plan does); lr=1 is stored as 1.0
        from modelkit.config.rules import coerced

        for name, value in coerced(self, schema()).items():
            object.__setattr__(self, name, value)
        self.validate()

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError listing every problem (``config.rules.problems``)."""
        from modelkit.config.rules import problems

        if found := problems(self, schema()):
            raise ConfigError("\n".join(found))

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


def schema() -> tuple[Setting, ...]:
    """Every TrainConfig field as declared: name, type, default, range or choices, help, group."""
    return settings_of(TrainConfig)
