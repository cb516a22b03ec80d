"""The pickers of ``auto`` without ImageNet features (none can be had, or the images are too
small to upscale on a CPU): the network and its size, the batch and the epochs, changed from
``from-scratch-small-images`` (``modelkit.recipes.choice``)."""

from __future__ import annotations

import math

from modelkit.recipes.choice import Choice
from modelkit.recipes.costs import scratch_epochs

TINY_SIDE = 64  # images this small (px): a small network from scratch, on a CPU
MAX_EPOCHS_IN_BUDGET = 60  # with a budget, epochs are an upper bound the budget cuts down


def from_scratch(c: Choice, seen: str) -> None:
    facts = c.facts
    why = f"no ImageNet weights can be had here; {seen}"
    if facts.pretrained:
        why = (
            f"the images are tiny (~{facts.median_side} px): ImageNet features would need them "
            f"upscaled to 224 px, slow on a CPU; a small network from scratch is faster; {seen}"
        )
    c.pick("weights", "none", why)
    _network(c)
    batch = int(c.explicit.get("batch_size") or (128 if facts.gpu else 64))
    c.pick("batch_size", batch, "large enough for a high one-cycle rate")
    steps = math.ceil(facts.images / batch)  # an epoch's steps at the batch the run will use
    epochs = scratch_epochs(steps)
    why = f"~2000 optimizer steps ({steps} an epoch) from random weights"
    if facts.time_budget:
        epochs, why = MAX_EPOCHS_IN_BUDGET, "at most; the time budget decides how many fit"
    c.pick("epochs", epochs, why)


def _network(c: Choice) -> None:
    facts = c.facts
    if facts.median_side and facts.median_side <= TINY_SIDE:
        c.pick("arch", "smallresnet", f"images are small (~{facts.median_side} px): a small ResNet")
        size = 32 if facts.median_side <= 40 else 64
        c.pick("image_size", size, f"about the images' own size ({facts.median_side} px)")
        return
    if not facts.gpu and facts.time_budget:
        # worth more from scratch than the width (Caltech-101, 15 minutes: 0.751 against 0.660,
        # time_to_accuracy_caltech101_scratch_15m_auto_resnet18_half_cpu2.json)
        c.pick(
            "arch", "resnet18_half",
            "on a CPU with a time budget, ResNet-18 at half width trains ~3x the epochs, "
            "worth more from scratch than the width",
        )  # fmt: skip
    else:
        c.pick("arch", "resnet18", "ResNet-18 trains well from scratch at small sizes")
    size = 160 if facts.gpu else 112
    c.pick(
        "image_size", size,
        "112 px: from scratch on a CPU, resolution costs more than it gives"
        if size == 112 else "160 px: a GPU affords the detail",
    )  # fmt: skip
