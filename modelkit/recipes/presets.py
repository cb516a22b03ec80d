"""The fixed recipes: named sets of TrainConfig settings for common situations, and where the
app's forms start. ``auto`` is not a fixed set: it looks at the dataset, the weights and the device
first (``modelkit.recipes.auto``). How they combine with what a person gives is
``modelkit.recipes.resolve``.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # A handful to a few dozen images per class, starting from ImageNet weights: train the head
    # first, then fine-tune everything gently; augment hard; stop when validation stops improving.
    "few-images": dict(
        epochs=30,
        head_epochs=5,
        optimizer="adamw",
        lr=1e-3,
        finetune_lr=1e-4,
        backbone_lr=2e-5,
        weight_decay=0.05,
        head_dropout=0.3,
        label_smoothing=0.1,
        scheduler="plateau",
        gamma=0.3,
        plateau_patience=2,
        early_stopping_patience=6,
        monitor="val_loss",
        crop_scale_min=0.25,
        hflip=True,
        rotation=15.0,
        zoom=0.1,
        brightness=0.3,
        contrast=0.3,
        saturation=0.3,
        hue=0.02,
    ),
    # Many small photos (<= 160 px: scenes, thumbnails) and no pretrained weights: ResNet-18 at
    # 112 px with one-cycle SGD, label smoothing and weight decay (87.8% on a 6-class scene set
    # from scratch in 13 minutes on a 2-core CPU, issue #13).
    "from-scratch-small-images": dict(
        weights="none",
        arch="resnet18",
        image_size=112,
        batch_size=64,
        epochs=14,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        label_smoothing=0.1,
        scheduler="onecycle",
        crop_scale_min=0.35,
        hflip=True,
    ),
    # Thousands of images per class and ImageNet weights: fine-tune everything from the first
    # step, the backbone at a lower rate than the new head, AdamW with a cosine schedule.
    "fine-tune-large": dict(
        weights="imagenet",
        image_size=224,
        batch_size=64,
        epochs=10,
        optimizer="adamw",
        lr=1e-3,
        backbone_lr=2e-4,
        weight_decay=0.05,
        label_smoothing=0.1,
        scheduler="cosine",
        crop_scale_min=0.25,
        hflip=True,
        brightness=0.2,
        contrast=0.2,
        saturation=0.2,
    ),
}
# What each recipe does, in a line: auto's notes and the Train page's recipe help say it.
ABOUT: dict[str, str] = {
    "few-images": "the new head first, then everything fine-tuned gently with AdamW, label "
    "smoothing and hard crops",
    "from-scratch-small-images": "ResNet-18 at 112 px from random weights, one-cycle SGD, label "
    "smoothing and weight decay",
    "fine-tune-large": "everything fine-tuned from the first step with AdamW and a cosine "
    "schedule, the backbone at a fifth of the head's rate",
}
AUTO = "auto"  # looks at the dataset first (recipes.auto); the Train page's first choice
NAMES = (AUTO, *PRESETS)  # every recipe a person can pick, ``auto`` first


# Where the app's form starts on a machine without a GPU: a first run that takes minutes.
CPU_START: dict[str, Any] = dict(epochs=5, image_size=128)
# Where the Tune page's trials start: short runs from random weights (nothing to download).
TRIAL_START: dict[str, Any] = dict(epochs=3, weights="none")


def recipe(name: str) -> dict[str, Any]:
    """The settings of a fixed recipe ("" or "none": no settings; ``auto`` needs the dataset:
    ``modelkit.recipes.auto.auto_recipe``)."""
    if name in ("", "none"):
        return {}
    if name not in PRESETS:
        from modelkit.config import ConfigError

        raise ConfigError(f"recipe: {name!r} is not one of {list(NAMES)}")
    return dict(PRESETS[name])
