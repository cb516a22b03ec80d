"""What the paths ``auto`` can take cost on this machine, and how many epochs fit a budget.

The rates are the registry's, measured on a quiet 2-core CPU; where ``auto`` probed the
backbones (``modelkit.recipes.probe``), the cost of a cached pass is the one measured here, and
every rate is scaled by how much slower this machine ran (``Facts.slowdown``), so a busy or slow
machine plans a cheaper path instead of spending its budget preparing one it cannot finish.
"""

from __future__ import annotations

import math
from typing import Any

from modelkit.recipes.facts import AutoRecipeError, Facts

# Room for fine-tuning on cached stage maps after the head, per training image (the log of
# benchmarks/results/time_to_accuracy_caltech101_5m_auto_stage_maps_cpu2.json):
STAGE_MAP_EPOCH_S_PER_IMAGE = 0.002
# the head, then at least four epochs on the maps
STAGE_MAPS_S_PER_IMAGE = 0.024 + 4 * STAGE_MAP_EPOCH_S_PER_IMAGE
MAP_PASSES = 2  # the maps of the centre crop and of its mirror image (auto's feature_passes)
TRAIN_OVER_INFERENCE = 3.0  # a training step costs about three forward passes
EVAL_VIEWS = 2  # auto evaluates an image and its mirror image (tta flip)
BUDGET_FOR_TRAINING = 0.75  # of a budget; the rest goes to decoding, the head and evaluation
# measured by the probe: three cached passes that would take more than this share of the budget
# left become one; one pass that would take more than MIN_PASS_SHARE leaves nothing to train
PASSES_SHARE = 0.4
MIN_PASS_SHARE = 0.7


def refuse_if_nothing_fits(facts: Facts) -> None:
    """A budget in which the images cannot even be looked at once trains nothing: say so before
    the run, with the least that works, rather than end with an untrained model (issue #29)."""
    one_pass = facts.images * facts.seconds_per_image
    if facts.time_budget and one_pass > MIN_PASS_SHARE * facts.time_budget:
        least = math.ceil((one_pass / MIN_PASS_SHARE + (facts.probe.seconds or 0)) / 10) * 10
        raise AutoRecipeError(
            f"a {facts.time_budget + facts.probe.seconds:.0f} s time budget is too short here: "
            f"one look at the {facts.images} training images takes ~{one_pass:.0f} s on this "
            f"machine (measured), before any training; give at least {least} s"
        )


def finetune_epochs_after_head(facts: Facts, speedup: float) -> float:
    """Fine-tuning epochs that fit the budget after the head, from the probe's seconds an image
    (0 where nothing was measured): first the cached pass over the training images and the
    evaluation images' views, at the end the final evaluation through the network; between,
    epochs of training steps (TRAIN_OVER_INFERENCE forward passes an image, ``speedup`` times
    fewer with early stages frozen) and a validation pass. The 25% of a budget kept back for
    these by ``epochs_224`` was too little on a slow CPU: Caltech-101's head phase took 72 s of
    111, and its first fine-tuning epoch was stopped (suite_one_commit_slow_cpu2.json)."""
    spi = facts.seconds_per_image
    if not spi or not facts.time_budget:
        return 0.0
    evaluated = EVAL_VIEWS * (facts.val_images + facts.test_images)
    before_and_after = spi * (facts.images + 2 * evaluated)
    epoch = spi * (TRAIN_OVER_INFERENCE * facts.images / speedup + facts.val_images)
    return max(facts.time_budget - before_and_after, 0.0) / epoch


def stage_maps_need(facts: Facts) -> float:
    """Seconds the stage-maps path needs at least: its cached passes and four epochs on them.
    Measured by the probe where it ran (a pass costs about what embedding the images did)."""
    if not facts.seconds_per_image:
        return facts.images * STAGE_MAPS_S_PER_IMAGE
    epochs = 4 * STAGE_MAP_EPOCH_S_PER_IMAGE * facts.slowdown
    return facts.images * (MAP_PASSES * facts.seconds_per_image + epochs)


def epochs_224(facts: Facts, arch: str) -> float:
    """Epochs of full fine-tuning at 224 px that fit the budget on this CPU (rough rates)."""
    from modelkit.models.registry import cpu_rate_224

    rate = cpu_rate_224(arch) / facts.slowdown
    # a quarter of the budget goes to decoding, the head's epochs and evaluation
    return BUDGET_FOR_TRAINING * facts.time_budget * rate / max(facts.images, 1)


def scratch_epochs(steps: int) -> int:
    """Epochs from random weights without a budget: ~2000 optimizer steps, 8 to 40 epochs."""
    return min(max(math.ceil(2000 / max(steps, 1)), 8), 40)


def expected_epochs(out: Any, facts: Facts, explicit: dict[str, Any]) -> float:
    """The epochs the run will train: those asked for, or under a budget on a CPU about as many
    as fit (a budget's 60 is an upper bound, not a plan)."""
    epochs = float(out.settings.get("epochs") or explicit.get("epochs") or 0)
    if facts.time_budget and facts.gpu:  # no rate known: what the run would plan without one
        steps = math.ceil(facts.images / int(out.settings.get("batch_size") or 64))
        epochs = min(epochs, scratch_epochs(steps))
    elif facts.time_budget:
        arch = out.settings.get("arch") or explicit.get("arch") or "resnet18"
        size = out.settings.get("image_size") or explicit.get("image_size") or 224
        from modelkit.models.registry import cpu_rate_224

        rate = cpu_rate_224(arch) * (224 / size) ** 2
        fit = BUDGET_FOR_TRAINING * facts.time_budget * rate / max(facts.images, 1)
        epochs = min(epochs, fit)
    return epochs
