"""The ``auto`` recipe: a fixed recipe chosen for the situation, then changed where what is known
about the data, the weights, the device and the time a person has gives a reason, each change
with one line of why.

What it looks at is cheap to learn (``modelkit.recipes.facts``): the folder's scan, the sizes of
a few hundred images, the class balance, whether ImageNet weights can be had here, the device,
the time budget, and (as a run starts) the backbones measured on the training images. With
pretrained weights it starts from ``few-images`` or ``fine-tune-large`` and the pickers of
``modelkit.recipes.fine_tune`` change it; without, from ``from-scratch-small-images`` and those
of ``modelkit.recipes.scratch``. With a budget the epochs are an upper bound: the run's
``TimeBudget`` callback fixes how many fit from the first batches.
"""

from __future__ import annotations

from typing import Any

from modelkit.config import schema
from modelkit.recipes import fine_tune, scratch
from modelkit.recipes import techniques as tech
from modelkit.recipes.choice import FEW_PER_CLASS, AutoRecipe, Choice
from modelkit.recipes.costs import expected_epochs, refuse_if_nothing_fits, scratch_epochs
from modelkit.recipes.facts import AutoRecipeError, Facts, gather_facts, image_sides
from modelkit.recipes.fine_tune import (
    FEW_FINETUNE_EPOCHS,
    HEAD_EPOCHS,
    MAX_EPOCHS_IN_BUDGET,
    STAGE_MAP_EPOCHS,
)

__all__ = [
    "FEW_FINETUNE_EPOCHS", "HEAD_EPOCHS", "MAX_EPOCHS_IN_BUDGET", "STAGE_MAP_EPOCHS",
    "AutoRecipe", "AutoRecipeError", "Facts", "auto_recipe", "choose", "expected_epochs",
    "gather_facts", "image_sides", "scratch_epochs",
]  # fmt: skip

IMBALANCED = 3.0  # largest class / smallest class above this: balance the classes
# Where auto starts: the fixed recipe for the situation (modelkit.recipes.presets).
FEW_IMAGES, MANY_IMAGES, FROM_SCRATCH = "few-images", "fine-tune-large", "from-scratch-small-images"


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
    per_class = facts.images / max(facts.classes, 1)
    seen = f"{facts.images} training images, {facts.classes} classes (~{per_class:.0f} a class)"
    tiny = 0 < facts.median_side <= scratch.TINY_SIDE
    # tiny images upscaled cost a CPU much, so without a measurement they train from scratch,
    # and so they do where one look at them upscaled would not fit the budget
    upscale = tiny and not facts.gpu and facts.probe is not None and _fits(facts)
    if facts.pretrained and not (tiny and not facts.gpu and not upscale):
        start = FEW_IMAGES if per_class < FEW_PER_CLASS else MANY_IMAGES
        why = f"ImageNet weights can be had here; {seen}"
        if upscale:
            why += (
                f"; the images are tiny (~{facts.median_side} px), but the backbones measured "
                f"on them upscaled score {facts.probe.best_accuracy():.3f} held out, and the "
                "race weighs a small network from scratch against them"
            )
        c = Choice(facts, explicit, start, why)
        _chosen_budget(c)
        refuse_if_nothing_fits(facts)
        maps = fine_tune.backbone(c, seen)
        fine_tune.schedule(c, maps)
        fine_tune.rates(c, maps)
        fine_tune.augmentation(c)
    else:
        c = Choice(facts, explicit, FROM_SCRATCH, f"no ImageNet features to start from; {seen}")
        _chosen_budget(c)
        scratch.from_scratch(c, seen)
    _monitor(c)
    _techniques(c)
    return c.out


def _fits(facts: Facts) -> bool:
    """Whether the training images can be looked at once in the budget (the least a path on
    pretrained features needs)."""
    try:
        refuse_if_nothing_fits(facts)
    except AutoRecipeError:
        return False
    return True


def _chosen_budget(c: Choice) -> None:
    facts = c.facts
    if facts.chosen_budget:
        c.pick(
            "time_budget", facts.time_budget,
            f"none was given: {facts.chosen_budget / 60:.0f} min for {facts.images} training "
            f"images on this {'GPU' if facts.gpu else 'CPU'}"
            + (f", less the {facts.probe.seconds:.0f} s that measured the backbones"
               if facts.probe else "")
            + "; give a time budget to choose another",
        )  # fmt: skip


def _monitor(c: Choice) -> None:
    if c.out.settings.get("cache_frozen_stages"):
        # by the loss Caltech-101 kept a head-only epoch (0.927) over the last one (0.945)
        c.pick(
            "monitor", "val_acc",
            "fine-tuning on the maps raises accuracy while the loss (label smoothing) stays flat: "
            "the best epoch by the loss would be an early one",
        )  # fmt: skip
    elif c.facts.imbalance > IMBALANCED:
        c.pick(
            "monitor", "val_loss",
            f"the largest class is {c.facts.imbalance:.1f}x the smallest: watch the loss, not "
            "accuracy, which the big classes dominate",
        )  # fmt: skip
    if c.facts.time_budget:
        c.out.reasons.append(
            (
                "",
                f"epochs fitted to the {c.facts.time_budget:g} s budget",
                "the first batches are timed and the schedule laid out to end on time",
            )
        )


def _techniques(c: Choice) -> None:
    """Issue #13's techniques for this situation, where TrainConfig has them."""
    facts = c.facts
    table = dict(tech.TECHNIQUES["fine-tune" if facts.pretrained else "scratch"])
    epochs = expected_epochs(c.out, facts, c.explicit) if not facts.pretrained else 0.0
    # a CPU does not get a small image's step for its share of the area (ResNet-18, 64 px:
    # 0.57x the time of 112 px for 0.33x the area; its half width, 96 px: 0.79x for 0.73x)
    if epochs >= tech.MANY_EPOCHS and facts.gpu:
        table.update(tech.TECHNIQUES["many-epochs"])
    if epochs >= tech.LONG_RUN_EPOCHS:
        table.update(tech.TECHNIQUES["long-run"])
    if c.value("head_epochs"):
        table["warmup_epochs"] = (0, "the head is trained first: fine-tuning needs no warmup")
    if facts.imbalance > IMBALANCED:
        table["class_balance"] = (
            "sqrt_weighted_loss",
            f"classes differ {facts.imbalance:.1f}x in size: weight the loss by 1/sqrt(class "
            "size), which lifts the rare classes without costing accuracy",
        )
    table.update(_eval_size(c, table))
    present = {s.name for s in schema()}
    for name, (value, why) in table.items():
        if name in present:
            c.pick(name, value, why)


def _eval_size(c: Choice, table: dict[str, tuple[Any, str]]) -> dict[str, tuple[Any, str]]:
    """Evaluating larger than the training size where the crops trained on show objects larger
    than a centre crop does (FixRes)."""
    size = c.value("image_size")
    if not size:
        return {}
    # one pass is the centre crop, and cached stage maps are the centre crop and its mirror
    # image first: nothing to correct for
    cached_centre = c.value("feature_passes") == 1 or c.value("cache_frozen_stages")
    out = {}
    if c.facts.pretrained and c.value("head_epochs") and not cached_centre:
        out["eval_size"] = (
            16 * round(size * tech.FIXRES_RATIO / 16),
            "the random crops trained on show objects larger than a centre crop at the "
            "training size: evaluating larger shows them at about that size (FixRes)",
        )
    if table.get("progressive_resize"):
        out["progressive_min_size"] = (max(16 * round(size * 0.6 / 16), 16), "start at ~60%")
        # not for short runs at one size: fixed-size auto runs that evaluated 16 px larger ended
        # below the fixed recipe that did not, though not only for that (in benchmarks/results/,
        # time_to_accuracy_caltech101_scratch_15m_auto_fixed_size_warmup1_cpu2.json)
        out["eval_size"] = (size + 16, "evaluate a little larger than training (FixRes)")
    return out
