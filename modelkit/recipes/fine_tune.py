"""The pickers of ``auto`` when ImageNet weights can be had: the backbone (measured, or the
one with better frozen features where the head is most of the run), what fits a CPU budget
(cached stage maps, frozen early stages, smaller images), the epochs, the rates and the
augmentation. Each starts from ``few-images`` or ``fine-tune-large`` (``modelkit.recipes.choice``).
"""

from __future__ import annotations

import math

from modelkit.recipes.choice import FEW_PER_CLASS, Choice
from modelkit.recipes.costs import (
    MAP_PASSES,
    PASSES_SHARE,
    epochs_224,
    finetune_epochs_after_head,
    stage_maps_need,
)
from modelkit.recipes.facts import Facts

STAGE_MAP_EPOCHS = (10, 12)  # head epochs, then fine-tuning epochs on the maps
MIN_EPOCHS_IN_BUDGET = 6  # fewer than this at full size: train smaller images instead
# Fine-tuning that does not fit the budget at 224 px on a CPU: freeze the architecture's
# ``partial_frozen_stages`` first where it declares them (a measured speed-up), shrink images after.
PARTIAL_SPEEDUP = 2.0
MAX_EPOCHS_IN_BUDGET = 60  # with a budget, epochs are an upper bound the budget cuts down
HEAD_EPOCHS = 5  # few images a class: head-only epochs on the cached features
HEAD_ONLY_EPOCHS = 30  # the head alone on cached features: cheap epochs, the budget cuts them
# then this many epochs of fine-tuning everything: on hymenoptera (Lite0) the head alone reaches
# ~95%; fine-tuning peaked after one or two epochs and lost 1-3 points by the third without EMA
FEW_FINETUNE_EPOCHS = 2
# Cached augmentation passes for the head cost a backbone pass over every training image each;
# they pay only while the images are few (in benchmarks/results/, one pass in
# time_to_accuracy_caltech101_5m_auto_one_pass_cpu2.json against three in
# time_to_accuracy_caltech101_5m_auto_cpu2.json).
ONE_PASS_FROM_IMAGES = 2000
# What auto's measured fine-tuning (benchmarks/results/transfer_hymenoptera_lite0_cpu2.json,
# transfer_caltech101_lite0_cpu2.json) did without, of the few-images preset.
UNMEASURED_EXTRAS = ("head_dropout", "rotation", "zoom", "saturation", "hue")


def backbone(c: Choice, seen: str) -> bool:
    """The backbone and its image size; whether fine-tuning runs on cached stage maps."""
    from modelkit.models import efficientnet_lite as lite  # torch: not when the module loads
    from modelkit.models.registry import architecture

    facts, arch = c.facts, c.facts.pretrained
    arch_why, size = f"its ImageNet weights are here; {seen}", 224
    why = "the size the ImageNet weights were trained at"
    better = None if "arch" in c.explicit else architecture(arch).better_features
    if facts.probe is not None and facts.probe.winner:
        # measured on these images: the winner's features, and its own stage maps if it has them
        arch = facts.probe.winner
        size = architecture(arch).image_size
        arch_why = f"{seen}; measured on {facts.probe.images} training images: {facts.probe.why}"
        why = f"the size {arch}'s ImageNet weights were trained at"
        better = (arch, size) if architecture(arch).stage_maps_frozen else None
    elif better and _head_first_on_cpu(facts, c.per_class) and lite.installed(better[0]):
        # the run is mostly the head on frozen features: the backbone with the better ones
        # (Caltech-101: 93.2% against 92.5% for Lite0's, transfer_caltech101_lite0_cpu2.json)
        arch, size = better
        arch_why = (
            f"{seen}; the budget on this CPU leaves little fine-tuning, so the head on frozen "
            f"features is most of the run, and {arch}'s are better than {facts.pretrained}'s"
        )
        why = f"the size {arch}'s ImageNet weights were trained at"
    c.pick("arch", arch, arch_why)
    c.pick("weights", "imagenet", "pretrained features reach high accuracy in a few epochs")
    maps = (
        better is not None
        and arch == better[0]
        and architecture(arch).stage_maps_frozen
        and facts.time_budget >= stage_maps_need(facts)
        and not {"frozen_stages", "cache_frozen_stages"} & set(c.explicit)
    )
    if maps:
        _stage_maps(c, arch)
    elif not facts.gpu and facts.time_budget:
        size, why = _fit_cpu_budget(c, arch, size, why)
    c.pick("image_size", size, why)
    return bool(maps)


def _stage_maps(c: Choice, arch: str) -> None:
    """Fine-tuning on cached maps of the frozen stages: what fits a CPU budget after the head
    (Caltech-101: 0.950 in 5 min, 0.952 in 15, against 0.930 for the head alone:
    time_to_accuracy_caltech101_5m_auto_stage_maps_cpu2.json)."""
    from modelkit.models.registry import architecture

    c.pick(
        "frozen_stages", architecture(arch).stage_maps_frozen,
        f"a {c.facts.time_budget:g} s budget leaves room after the head on this CPU: fine-tune "
        "the last stage, on its input computed once, which beat the head alone",
    )  # fmt: skip
    c.pick("cache_frozen_stages", True, "the frozen stages' outputs are cached: a fast epoch")


def _fit_cpu_budget(c: Choice, arch: str, size: int, why: str) -> tuple[int, str]:
    """Fine-tuning that does not fit the CPU budget at full size: freeze early stages where the
    architecture measured that, keep the size where the head does most of the work, else
    shrink the images. Returns the image size and why."""
    from modelkit.models.registry import architecture

    fit_224 = epochs_224(c.facts, arch)
    # few images a class fine-tune for a few epochs only (the head's epochs are cheap)
    few = c.per_class < FEW_PER_CLASS
    needed = FEW_FINETUNE_EPOCHS if few else MIN_EPOCHS_IN_BUDGET
    stages = architecture(arch).partial_frozen_stages
    if few and _choose_head_alone(c, PARTIAL_SPEEDUP if stages else 1.0):
        return size, why + "; the head on cached features is the run"
    if stages and needed > fit_224 and (few or fit_224 >= needed / PARTIAL_SPEEDUP):
        c.pick(
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
    return size, why


def _choose_head_alone(c: Choice, speedup: float) -> bool:
    """Few images a class on a CPU where, by the probe's measured costs, fewer fine-tuning
    epochs than FEW_FINETUNE_EPOCHS fit after the head: the head trains alone, for as many
    cheap epochs as the budget gives, instead of a fine-tuning epoch that is stopped unfinished.
    On the suite's Caltech-101 at 2 minutes on a slow CPU that epoch was stopped after 5 head
    epochs (0.901, suite_one_commit_slow_cpu2.json); the head alone for 30 epochs reached
    0.920 (suite_2m_auto_cpu2.json)."""
    if {"freeze_backbone", "head_epochs", "frozen_stages"} & set(c.explicit):
        return False
    fits = finetune_epochs_after_head(c.facts, speedup)
    if not c.facts.seconds_per_image or fits >= FEW_FINETUNE_EPOCHS:
        return False
    c.pick(
        "freeze_backbone", True,
        f"measured here: after the head's cached pass and before the final evaluation, "
        f"~{fits:.1f} epochs of fine-tuning fit the {c.facts.time_budget:.0f} s left, fewer than "
        f"the {FEW_FINETUNE_EPOCHS} few images a class fine-tune for: the head trains alone",
    )  # fmt: skip
    c.pick("head_epochs", 0, "the backbone stays frozen: no fine-tuning phase")
    return True


def head_alone(c: Choice) -> bool:
    """Whether auto chose to train the head alone (not the person, by freezing the backbone)."""
    return bool(c.out.settings.get("freeze_backbone")) and not c.frozen


def _head_first_on_cpu(facts: Facts, per_class: float) -> bool:
    """Few images a class on a CPU, with a budget too short for even the brief fine-tuning of
    the bundled Lite0: the head on cached features will be most of the run."""
    if facts.gpu or not facts.time_budget or per_class >= FEW_PER_CLASS:
        return False
    return epochs_224(facts, facts.pretrained) < FEW_FINETUNE_EPOCHS


def schedule(c: Choice, maps: bool) -> None:
    facts = c.facts
    batch = int(c.explicit.get("batch_size") or (64 if facts.gpu else 32))
    c.pick("batch_size", batch, "fits memory; small batches help few images")
    steps = math.ceil(facts.images / batch)  # an epoch's steps at the batch the run will use
    if maps:
        head = int(c.explicit.get("head_epochs", STAGE_MAP_EPOCHS[0]))
        c.pick(
            "epochs", head + STAGE_MAP_EPOCHS[1],
            f"{head} head epochs, then {STAGE_MAP_EPOCHS[1]} on the cached maps; the budget "
            "cuts them if need be",
        )  # fmt: skip
    elif head_alone(c):
        c.pick("epochs", HEAD_ONLY_EPOCHS, "the head's epochs are cheap; the budget cuts them")
    elif c.per_class < FEW_PER_CLASS:
        head = int(c.explicit.get("head_epochs", HEAD_EPOCHS))
        c.pick(
            "epochs", head + FEW_FINETUNE_EPOCHS,
            f"{head} head epochs, then {FEW_FINETUNE_EPOCHS} of fine-tuning: with few "
            "images a class, longer fine-tuning overfits",
        )  # fmt: skip
    elif facts.time_budget:
        c.pick("epochs", MAX_EPOCHS_IN_BUDGET, "at most; the time budget decides how many fit")
    else:
        epochs = min(max(math.ceil(600 / max(steps, 1)), 4), 20)
        c.pick("epochs", epochs, f"~600 optimizer steps ({steps} an epoch) fine-tune a net")
    if c.base.get("scheduler", "cosine") != "cosine":
        c.pick("scheduler", "cosine", "cosine decay ends each phase at a low rate")
        c.drop(("gamma", "plateau_patience"), "only the plateau schedule uses it")
    c.drop(("early_stopping_patience",), "the schedule ends the run; the best epoch is kept")


def rates(c: Choice, maps: bool) -> None:
    """The head first where images a class are few, on cached features or stage maps."""
    if c.per_class >= FEW_PER_CLASS:
        return  # fine-tune-large's rates: everything from the first step, the backbone slower
    if head_alone(c):
        _feature_passes(c)
        return
    c.pick(
        "head_epochs", STAGE_MAP_EPOCHS[0] if maps else HEAD_EPOCHS,
        f"~{c.per_class:.0f} images a class: train the new head on the frozen backbone first "
        "(cheap: its features are cached), then fine-tune everything",
    )  # fmt: skip
    if maps:
        c.pick("feature_passes", MAP_PASSES, "the maps of the centre crop and of its mirror image")
        # 1e-3 for both did better than 3e-4/2e-4 (in benchmarks/results/,
        # time_to_accuracy_caltech101_15m_auto_stage_maps_1e-3_cpu2.json against
        # time_to_accuracy_caltech101_15m_auto_stage_maps_cpu2.json)
        c.pick("finetune_lr", 1e-3, "the head's rate once the last stage trains too")
        c.pick("backbone_lr", 1e-3, "one stage on fixed maps: it trains like a new layer")
    else:
        _feature_passes(c)
        # gentle rates keep what the head learnt, 3e-4/1e-4 lost it (in benchmarks/results/,
        # transfer_hymenoptera_lite0_cpu2.json and transfer_caltech101_lite0_cpu2.json)
        c.pick("finetune_lr", 1e-4, "the head's rate once the backbone trains too")
        c.pick("backbone_lr", 2e-5, "the pretrained layers move gently: few images overfit fast")
    # BatchNorm statistics re-estimated from small batches of augmented crops cost the first
    # fine-tuning epoch accuracy; kept, it gained (the latter:
    # benchmarks/results/time_to_accuracy_caltech101_lite0_15m_freeze_bn_auto_cpu2.json)
    c.pick(
        "freeze_bn", True,
        "keep the ImageNet BatchNorm statistics: small batches of few images would shift them",
    )  # fmt: skip


def _feature_passes(c: Choice) -> None:
    """One cached pass for the head where three would cost more than they give."""
    facts = c.facts
    one_pass = facts.images * facts.seconds_per_image
    if facts.images >= ONE_PASS_FROM_IMAGES:
        c.pick(
            "feature_passes", 1,
            f"{facts.images} training images: the head learns as much from one cached "
            "pass (the centre crop) as from three augmented ones, in a third of the time",
        )  # fmt: skip
    elif facts.time_budget and 3 * one_pass > PASSES_SHARE * facts.time_budget:
        c.pick(
            "feature_passes", 1,
            f"measured here: one cached pass over the {facts.images} training images "
            f"takes ~{one_pass:.0f} s, three would take most of the "
            f"{facts.time_budget:.0f} s left",
        )  # fmt: skip


def augmentation(c: Choice) -> None:
    """What the measured fine-tuning used: the presets' extra jitter set back."""
    if c.per_class < FEW_PER_CLASS:
        c.pick("brightness", 0.2, "light colour jitter, as in the fine-tuning measured")
        c.pick("contrast", 0.2, "light colour jitter, as in the fine-tuning measured")
        c.drop(UNMEASURED_EXTRAS, "crops, flips and light colour jitter are what was measured")
    else:
        c.pick("crop_scale_min", 0.35, "enough images: moderate crops")
        c.drop(("brightness", "contrast", "saturation"), "enough images: crops and flips suffice")
