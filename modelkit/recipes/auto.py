"""The ``auto`` recipe: settings chosen from what is known about the data, the weights, the
device and the time a person has, each with one line of why.

What it looks at is cheap to learn: the folder's scan (images and classes per split, no decoding),
the sizes of a few hundred images (PIL reads only their headers), the class balance, whether
ImageNet weights can be had here (``modelkit.models.weights``), the device, and the optional time
budget. The choices follow what worked on this kind of machine (issue #13): with pretrained
weights, fine-tune (the head first when there are few images a class) at 224 px, lower on a
CPU with a tight budget; without them, ResNet-18 at 112 px (at half width on a CPU with a budget,
for three times the epochs; a small ResNet for thumbnails) with one-cycle SGD, label smoothing
and weight decay. With a budget the epochs are an upper bound:
the run's ``TimeBudget`` callback fixes how many fit from the first batches; few images a class
keep their short fine-tuning even when the budget would allow more.

The training techniques of issue #13 (EMA, mixup/cutmix, TrivialAugment, warmup, class balance,
TTA, progressive resizing) are set through ``TECHNIQUES`` only where TrainConfig has the field,
so the recipe uses each one the moment it exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from modelkit.config import schema
from modelkit.recipes import techniques as tech
from modelkit.recipes.costs import (
    MAP_PASSES,
    PASSES_SHARE,
    epochs_224,
    expected_epochs,
    refuse_if_nothing_fits,
    scratch_epochs,
    stage_maps_need,
)
from modelkit.recipes.facts import AutoRecipeError, Facts, gather_facts, image_sides

__all__ = [
    "AutoRecipe", "AutoRecipeError", "Facts", "auto_recipe", "choose", "expected_epochs",
    "gather_facts", "image_sides", "scratch_epochs",
]  # fmt: skip

TINY_SIDE = 64  # images this small (px): a small network from scratch, on a CPU
FEW_PER_CLASS = 300  # fewer training images a class than this: train the head first
IMBALANCED = 3.0  # largest class / smallest class above this: balance the classes
# What each architecture runs at on a CPU, which backbone has better frozen features, and which
# stages to freeze or cache are the architecture's own facts (modelkit.models.registry).
STAGE_MAP_EPOCHS = (10, 12)  # head epochs, then fine-tuning epochs on the maps
MIN_EPOCHS_IN_BUDGET = 6  # fewer than this at full size: train smaller images instead
# Fine-tuning that does not fit the budget at 224 px on a CPU: freeze the architecture's
# ``partial_frozen_stages`` first where it declares them (a measured speed-up), shrink images after.
PARTIAL_SPEEDUP = 2.0
MAX_EPOCHS_IN_BUDGET = 60  # with a budget, epochs are an upper bound the budget cuts down
HEAD_EPOCHS = 5  # few images a class: head-only epochs on the cached features
# then this many epochs of fine-tuning everything: on hymenoptera (Lite0) the head alone reaches
# ~95%; fine-tuning peaked after one or two epochs and lost 1-3 points by the third without EMA
FEW_FINETUNE_EPOCHS = 2
# Cached augmentation passes for the head cost a backbone pass over every training image each;
# they pay only while the images are few (in benchmarks/results/, one pass in
# time_to_accuracy_caltech101_5m_auto_one_pass_cpu2.json against three in
# time_to_accuracy_caltech101_5m_auto_cpu2.json).
ONE_PASS_FROM_IMAGES = 2000


@dataclass
class AutoRecipe:
    """The settings chosen, and for each choice one line of why (in the order chosen)."""

    settings: dict[str, Any]
    reasons: list[tuple[str, Any, str]] = field(default_factory=list)  # (field or "", value, why)
    facts: Facts | None = None

    def lines(self, config: Any = None) -> list[str]:
        """One line per choice; given the ``config`` a run starts with, only the choices it
        kept (a person may have changed some on the form)."""
        out = []
        for name, value, why in self.reasons:
            if name and config is not None and getattr(config, name, value) != value:
                continue
            out.append(f"auto: {name} = {value} ({why})" if name else f"auto: {value} ({why})")
        return out


def auto_recipe(
    data_dir: str,
    explicit: dict[str, Any] | None = None,
    probe_network: bool = True,
    measure: bool = False,
) -> AutoRecipe:
    """The ``auto`` recipe for ``data_dir``: settings and one line of why each. ``measure``:
    the backbone is chosen by scoring each one on the training images (when a run starts)."""
    explicit = dict(explicit or {})
    return choose(gather_facts(data_dir, explicit, probe_network, measure=measure), explicit)


def choose(facts: Facts, explicit: dict[str, Any] | None = None) -> AutoRecipe:
    """The choices, from ``facts`` alone (tests give facts directly). Settings the person gave
    (``explicit``) are not chosen again; they win anyway."""
    explicit = explicit or {}
    out = AutoRecipe({}, [], facts)

    def pick(name: str, value: Any, why: str) -> None:
        if name not in explicit:
            out.settings[name] = value
            out.reasons.append((name, value, why))

    per_class = facts.images / max(facts.classes, 1)
    seen = f"{facts.images} training images, {facts.classes} classes (~{per_class:.0f} a class)"
    if facts.chosen_budget:
        pick(
            "time_budget", facts.time_budget,
            f"none was given: {facts.chosen_budget / 60:.0f} min for {facts.images} training "
            f"images on this {'GPU' if facts.gpu else 'CPU'}"
            + (f", less the {facts.probe.seconds:.0f} s that measured the backbones"
               if facts.probe else "")
            + "; give a time budget to choose another",
        )  # fmt: skip
    tiny = 0 < facts.median_side <= TINY_SIDE
    if facts.pretrained and not (tiny and not facts.gpu):
        _fine_tune(facts, pick, per_class, seen, explicit)
    else:
        _from_scratch(facts, pick, seen, explicit)
    if out.settings.get("cache_frozen_stages"):
        pick(
            "monitor", "val_acc",
            "fine-tuning on the maps raises accuracy while the loss (label smoothing) stays flat: "
            "by the loss Caltech-101 kept a head-only epoch (0.927) over the last one (0.945)",
        )  # fmt: skip
    elif facts.imbalance > IMBALANCED:
        pick(
            "monitor", "val_loss",
            f"the largest class is {facts.imbalance:.1f}x the smallest: watch the loss, not "
            "accuracy, which the big classes dominate",
        )  # fmt: skip
    if facts.time_budget:
        out.reasons.append(
            (
                "",
                f"epochs fitted to the {facts.time_budget:g} s budget",
                "the first batches are timed and the schedule laid out to end on time",
            )
        )
    _techniques(out, facts, explicit)
    return out


def _fine_tune(
    facts: Facts, pick: Any, per_class: float, seen: str, explicit: dict[str, Any]
) -> None:
    refuse_if_nothing_fits(facts)
    arch = facts.pretrained
    arch_why = f"its ImageNet weights are here; {seen}"
    size = 224
    why = "the size the ImageNet weights were trained at"
    from modelkit.models import efficientnet_lite as lite  # torch: not when the module loads
    from modelkit.models.registry import architecture

    better = None if "arch" in explicit else architecture(arch).better_features
    if facts.probe is not None and facts.probe.winner:
        # measured on these images: the winner's features, and its own stage maps if it has them
        arch = facts.probe.winner
        size = architecture(arch).image_size
        arch_why = f"{seen}; measured on {facts.probe.images} training images: {facts.probe.why}"
        why = f"the size {arch}'s ImageNet weights were trained at"
        better = (arch, size) if architecture(arch).stage_maps_frozen else None
    elif better and _head_first_on_cpu(facts, per_class) and lite.installed(better[0]):
        # the run is mostly the head on frozen features: the backbone with the better ones
        arch, size = better
        arch_why = (
            f"{seen}; the budget on this CPU leaves little fine-tuning, so the head on frozen "
            f"features is most of the run, and {arch}'s are better (Caltech-101: 93.2% against "
            "92.5% for Lite0's)"
        )
        why = f"the size {arch}'s ImageNet weights were trained at"
    pick("arch", arch, arch_why)
    pick("weights", "imagenet", "pretrained features reach high accuracy in a few epochs")
    maps = (
        better is not None
        and arch == better[0]
        and architecture(arch).stage_maps_frozen
        and facts.time_budget >= stage_maps_need(facts)
        and not {"frozen_stages", "cache_frozen_stages"} & set(explicit)
    )
    if maps:
        _stage_maps(facts, pick, arch)
    elif not facts.gpu and facts.time_budget:
        fit_224 = epochs_224(facts, arch)
        # few images a class fine-tune for a few epochs only (the head's epochs are cheap)
        few = per_class < FEW_PER_CLASS
        needed = FEW_FINETUNE_EPOCHS if few else MIN_EPOCHS_IN_BUDGET
        stages = architecture(arch).partial_frozen_stages
        if stages and needed > fit_224 and (few or fit_224 >= needed / PARTIAL_SPEEDUP):
            pick(
                "frozen_stages", stages,
                f"at 224 px full fine-tuning fits ~{fit_224:.1f} epochs in the budget on this "
                f"CPU; with the stem and first {stages - 1} stages frozen about twice as many, "
                "at the resolution the weights know",
            )  # fmt: skip
        elif fit_224 < needed and few:
            # the head on cached full-size features is most of the accuracy (smaller images lost
            # it: benchmarks/results/time_to_accuracy_caltech101_5m_auto_160px_cpu2.json);
            # fine-tuning epochs that do not fit are not started
            why += "; with few images a class the head on cached features does most of the work"
        elif fit_224 < needed:
            size = 160
            why = f"at 224 px only ~{fit_224:.0f} epochs would fit the budget on this CPU"
    pick("image_size", size, why)
    batch = int(explicit.get("batch_size") or (64 if facts.gpu else 32))
    pick("batch_size", batch, "fits memory; small batches help few images")
    steps = math.ceil(facts.images / batch)  # an epoch's steps at the batch the run will use
    if maps:
        head = int(explicit.get("head_epochs", STAGE_MAP_EPOCHS[0]))
        pick(
            "epochs", head + STAGE_MAP_EPOCHS[1],
            f"{head} head epochs, then {STAGE_MAP_EPOCHS[1]} on the cached maps (~10 s each "
            "for Caltech-101's 7,315 images on a 2-core CPU); the budget cuts them if need be",
        )  # fmt: skip
    elif per_class < FEW_PER_CLASS:
        head = int(explicit.get("head_epochs", HEAD_EPOCHS))
        pick(
            "epochs", head + FEW_FINETUNE_EPOCHS,
            f"{head} head epochs, then {FEW_FINETUNE_EPOCHS} of fine-tuning: with few "
            "images a class, longer fine-tuning overfits (measured on hymenoptera)",
        )  # fmt: skip
    else:
        epochs = min(max(math.ceil(600 / max(steps, 1)), 4), 20)
        if facts.time_budget:
            epochs, why = MAX_EPOCHS_IN_BUDGET, "at most; the time budget decides how many fit"
        else:
            why = f"~600 optimizer steps ({steps} an epoch) fine-tune a pretrained net"
        pick("epochs", epochs, why)
    pick("optimizer", "adamw", "AdamW fine-tunes pretrained weights with little tuning")
    pick("weight_decay", 0.05, "AdamW's usual decoupled weight decay")
    pick("label_smoothing", 0.1, "softer targets generalise better and calibrate the scores")
    pick("scheduler", "cosine", "cosine decay ends each phase at a low rate")
    if per_class < FEW_PER_CLASS:
        pick(
            "head_epochs", STAGE_MAP_EPOCHS[0] if maps else HEAD_EPOCHS,
            f"~{per_class:.0f} images a class: train the new head on the frozen backbone first "
            "(cheap: its features are cached), then fine-tune everything",
        )  # fmt: skip
        pick("lr", 1e-3, "the new head alone, on cached features")
        if maps:
            pick(
                "feature_passes", MAP_PASSES, "the maps of the centre crop and of its mirror image"
            )
            # 1e-3 for both did better than 3e-4/2e-4 (in benchmarks/results/,
            # time_to_accuracy_caltech101_15m_auto_stage_maps_1e-3_cpu2.json against
            # time_to_accuracy_caltech101_15m_auto_stage_maps_cpu2.json)
            pick("finetune_lr", 1e-3, "the head's rate once the last stage trains too")
            pick("backbone_lr", 1e-3, "one stage on fixed maps: it trains like a new layer")
        else:
            one_pass = facts.images * facts.seconds_per_image
            if facts.images >= ONE_PASS_FROM_IMAGES:
                pick(
                    "feature_passes", 1,
                    f"{facts.images} training images: the head learns as much from one cached "
                    "pass (the centre crop) as from three augmented ones, in a third of the time",
                )  # fmt: skip
            elif facts.time_budget and 3 * one_pass > PASSES_SHARE * facts.time_budget:
                pick(
                    "feature_passes", 1,
                    f"measured here: one cached pass over the {facts.images} training images "
                    f"takes ~{one_pass:.0f} s, three would take most of the "
                    f"{facts.time_budget:.0f} s left",
                )  # fmt: skip
            # gentle rates keep what the head learnt, 3e-4/1e-4 lost it (in benchmarks/results/,
            # transfer_hymenoptera_lite0_cpu2.json and transfer_caltech101_lite0_cpu2.json)
            pick("finetune_lr", 1e-4, "the head's rate once the backbone trains too")
            pick("backbone_lr", 2e-5, "the pretrained layers move gently: few images overfit fast")
        # BatchNorm statistics re-estimated from small batches of augmented crops cost the first
        # fine-tuning epoch accuracy; kept, it gained (the latter:
        # benchmarks/results/time_to_accuracy_caltech101_lite0_15m_freeze_bn_auto_cpu2.json)
        pick(
            "freeze_bn",
            True,
            "keep the ImageNet BatchNorm statistics: small batches of few images would shift them",
        )
        pick("crop_scale_min", 0.25, "few images: crop hard to see more variety")
        pick("brightness", 0.2, "colour jitter: few images need more variety")
        pick("contrast", 0.2, "colour jitter: few images need more variety")
    else:
        pick("lr", 1e-3, f"~{per_class:.0f} images a class: fine-tune everything from the start")
        pick("backbone_lr", 2e-4, "the pretrained layers at a fifth of the head's rate")
        pick("crop_scale_min", 0.35, "enough images: moderate crops")
    pick("hflip", True, "mirrored photos are still the same class")


def _stage_maps(facts: Facts, pick: Any, arch: str) -> None:
    """Fine-tuning on cached maps of the frozen stages: what fits a CPU budget after the head."""
    from modelkit.models.registry import architecture

    pick(
        "frozen_stages", architecture(arch).stage_maps_frozen,
        f"a {facts.time_budget:g} s budget leaves room after the head on this CPU: fine-tune "
        "the last stage, on its input computed once (Caltech-101: 0.950 in 5 min, 0.952 in 15, "
        "against 0.930 for the head alone)",
    )  # fmt: skip
    pick("cache_frozen_stages", True, "the frozen stages' outputs are cached: ~10 s an epoch")


def _head_first_on_cpu(facts: Facts, per_class: float) -> bool:
    """Few images a class on a CPU, with a budget too short for even the brief fine-tuning of
    the bundled Lite0: the head on cached features will be most of the run."""
    if facts.gpu or not facts.time_budget or per_class >= FEW_PER_CLASS:
        return False
    return epochs_224(facts, facts.pretrained) < FEW_FINETUNE_EPOCHS


def _from_scratch(facts: Facts, pick: Any, seen: str, explicit: dict[str, Any]) -> None:
    why = f"no ImageNet weights can be had here; {seen}"
    if facts.pretrained:
        why = (
            f"the images are tiny (~{facts.median_side} px): ImageNet features would need them "
            f"upscaled to 224 px, slow on a CPU; a small network from scratch is faster; {seen}"
        )
    pick("weights", "none", why)
    if facts.median_side and facts.median_side <= TINY_SIDE:
        pick("arch", "smallresnet", f"images are small (~{facts.median_side} px): a small ResNet")
        size = 32 if facts.median_side <= 40 else 64
        pick("image_size", size, f"about the images' own size ({facts.median_side} px)")
    else:
        if not facts.gpu and facts.time_budget:
            pick(
                "arch", "resnet18_half",
                "on a CPU with a time budget, ResNet-18 at half width trains ~3x the epochs, "
                "worth more from scratch than the width (Caltech-101, 15 minutes: 0.751 against "
                "0.660)",
            )  # fmt: skip
        else:
            pick("arch", "resnet18", "ResNet-18 trains well from scratch at small sizes")
        size = 160 if facts.gpu else 112
        pick(
            "image_size", size,
            "112 px: from scratch on a CPU, resolution costs more than it gives (issue #13)"
            if size == 112 else "160 px: a GPU affords the detail",
        )  # fmt: skip
    batch = int(explicit.get("batch_size") or (128 if facts.gpu else 64))
    pick("batch_size", batch, "large enough for a high one-cycle rate")
    steps = math.ceil(facts.images / batch)  # an epoch's steps at the batch the run will use
    epochs = scratch_epochs(steps)
    why = f"~2000 optimizer steps ({steps} an epoch) from random weights"
    if facts.time_budget:
        epochs, why = MAX_EPOCHS_IN_BUDGET, "at most; the time budget decides how many fit"
    pick("epochs", epochs, why)
    pick("optimizer", "sgd", "SGD with momentum: the speed-run recipes' optimizer")
    pick("lr", 0.1, "one-cycle peaks high; the hand-picked scene recipe used 0.1")
    pick("scheduler", "onecycle", "one-cycle reaches good accuracy in few epochs")
    pick("weight_decay", 5e-4, "from scratch needs more regularisation")
    pick("label_smoothing", 0.1, "softer targets generalise better")
    pick("crop_scale_min", 0.35, "random crops are the main augmentation from scratch")
    pick("hflip", True, "mirrored photos are still the same class")


def _techniques(out: AutoRecipe, facts: Facts, explicit: dict[str, Any]) -> None:
    """Issue #13's techniques for this situation, where TrainConfig has them."""
    table = dict(tech.TECHNIQUES["fine-tune" if facts.pretrained else "scratch"])
    epochs = expected_epochs(out, facts, explicit) if not facts.pretrained else 0.0
    # a CPU does not get a small image's step for its share of the area (ResNet-18, 64 px:
    # 0.57x the time of 112 px for 0.33x the area; its half width, 96 px: 0.79x for 0.73x)
    if epochs >= tech.MANY_EPOCHS and facts.gpu:
        table.update(tech.TECHNIQUES["many-epochs"])
    if epochs >= tech.LONG_RUN_EPOCHS:
        table.update(tech.TECHNIQUES["long-run"])
    head_first = out.settings.get("head_epochs") or explicit.get("head_epochs")
    if head_first:
        table["warmup_epochs"] = (0, "the head is trained first: fine-tuning needs no warmup")
    if facts.imbalance > IMBALANCED:
        table["class_balance"] = (
            "sqrt_weighted_loss",
            f"classes differ {facts.imbalance:.1f}x in size: weight the loss by 1/sqrt(class "
            "size), which lifts the rare classes without costing accuracy",
        )
    size = out.settings.get("image_size") or explicit.get("image_size")
    if facts.pretrained and head_first and size:
        passes = out.settings.get("feature_passes") or explicit.get("feature_passes")
        # one pass is the centre crop, and cached stage maps are the centre crop and its
        # mirror image first: nothing to correct for
        maps = out.settings.get("cache_frozen_stages") or explicit.get("cache_frozen_stages")
        if passes != 1 and not maps:
            table["eval_size"] = (
                16 * round(size * tech.FIXRES_RATIO / 16),
                "the random crops trained on show objects larger than a centre crop at the "
                "training size: evaluating larger shows them at about that size (FixRes)",
            )
    if table.get("progressive_resize") and size:
        table["progressive_min_size"] = (
            max(16 * round(size * 0.6 / 16), 16),
            "start at ~60% of the final size",
        )
        # not for short runs at one size: fixed-size auto runs that evaluated 16 px larger ended
        # below the fixed recipe that did not, though not only for that (in benchmarks/results/,
        # time_to_accuracy_caltech101_scratch_15m_auto_fixed_size_warmup1_cpu2.json)
        table["eval_size"] = (size + 16, "evaluate a little larger than training (FixRes)")
    present = {s.name for s in schema()}
    for name, (value, why) in table.items():
        if name in present and name not in explicit:
            out.settings[name] = value
            out.reasons.append((name, value, why))
