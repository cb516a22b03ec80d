"""Recipes: named sets of TrainConfig settings for common situations.

A recipe fills the defaults; settings given explicitly (CLI flags, the form) still win:
``TrainConfig(**{**PRESETS[name], **explicit})``.
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
}


# Where the app's form starts on a machine without a GPU: a first run that takes minutes.
CPU_START: dict[str, Any] = dict(epochs=5, image_size=128)
# Where the Tune page's trials start: short runs from random weights (nothing to download).
TRIAL_START: dict[str, Any] = dict(epochs=3, weights="none")


def app_start(on_gpu: bool) -> tuple[dict[str, Any], str]:
    """Where the app's Train form starts, and a note for the person ("" when none is due).

    A pretrained model that works here: ResNet-18 where its ImageNet weights are cached or can be
    downloaded, else the bundled EfficientNet-Lite0, never random weights on a fresh offline
    machine. Without a GPU, a first run that takes minutes (CPU_START)."""
    from modelkit.models.weights import with_default_arch

    start, note = with_default_arch({})
    return {**({} if on_gpu else CPU_START), **start}, note


def recipe(name: str) -> dict[str, Any]:
    """The settings of a recipe ("" or "none": no settings)."""
    if name in ("", "none"):
        return {}
    if name not in PRESETS:
        from modelkit.config import ConfigError

        raise ConfigError(f"recipe: {name!r} is not one of {sorted(PRESETS)}")
    return dict(PRESETS[name])


def resolve_settings(
    name: str, explicit: dict[str, Any], probe_network: bool = True
) -> tuple[dict[str, Any], str]:
    """The settings of a new run: recipe ``name`` under ``explicit`` ones, with the architecture
    filled when none was chosen (ResNet-18 where its ImageNet weights can be had, else the bundled
    EfficientNet-Lite0), checked so that ImageNet weights that cannot be had stop the run before it
    starts, with a message offering the bundled backbone. Returns the settings and a note for the
    user ("" when there is nothing to say). Used by ``train``, ``tune`` and ``lr-find``."""
    from modelkit.models.weights import check_starting_weights, with_default_arch

    settings, note = with_default_arch({**recipe(name), **explicit}, probe_network)
    if "arch" in settings:
        check_starting_weights(settings["arch"], settings.get("weights", "imagenet"), probe_network)
    return settings, note
