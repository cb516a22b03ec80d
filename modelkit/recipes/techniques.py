"""The training techniques of issue #13 that the ``auto`` recipe turns on, by situation, each with
one line of why. A table of its own so the recipe's rules and the measurements behind each entry
can be read apart; ``recipes.auto._techniques`` applies it."""

from __future__ import annotations

from typing import Any

MANY_EPOCHS = 20  # runs at least this long from scratch grow their images (on a GPU)
# ... and at least this long get strong regularisers (TrivialAugment, mixup/cutmix), which cost a
# shorter run accuracy (in benchmarks/results/,
# time_to_accuracy_caltech101_scratch_15m_auto_resnet18_half_mixup_cutmix_cpu2.json against
# time_to_accuracy_caltech101_scratch_15m_auto_resnet18_half_cpu2.json)
LONG_RUN_EPOCHS = 60
# Below that the head's cached passes and the fine-tuning see random crops (down to a quarter of
# the image), which show objects larger than the centre crop does: evaluating at this multiple of
# the training size shows them at about the size trained on (FixRes: ResNet-50 trained at 224
# tested best at 288; hymenoptera, 5 seeds, 224/256/288 px:
# benchmarks/results/time_to_accuracy_hymenoptera_2m_auto_variants_seeds_cpu2.json)
FIXRES_RATIO = 9 / 7

# Issue #13's training techniques, by situation: field -> (value, why). Applied only for the
# fields TrainConfig has (``techniques``); the names are the fields those features add.
TECHNIQUES: dict[str, dict[str, tuple[Any, str]]] = {
    "fine-tune": {
        "ema": (True, "EMA of the weights smooths the last epochs of a short run"),
        "ema_decay": (0.998, "a short memory suits a run of a few hundred steps"),
        "warmup_epochs": (1, "one warmup epoch keeps the new head from wrecking the backbone"),
        "tta": ("flip", "flipped copies at evaluation cost little and add accuracy"),
    },
    "scratch": {
        "ema": (True, "EMA of the weights: airbench and Ultralytics train with it"),
        "ema_decay": (0.999, "the usual memory for a run of thousands of steps"),
        # no warmup_epochs: with one-cycle it sets the length of the rise, and one-cycle's own
        # 30% did as well as a one-epoch rise (in benchmarks/results/,
        # time_to_accuracy_caltech101_scratch_15m_auto_fixed_size_onecycle_rise_cpu2.json against
        # time_to_accuracy_caltech101_scratch_15m_auto_fixed_size_warmup1_cpu2.json)
        "tta": ("flip", "flipped copies at evaluation cost little and add accuracy"),
    },
    "many-epochs": {
        # in a short run on a CPU the small epochs cost more accuracy than the time they save
        # (in benchmarks/results/, 64 -> 112 px in
        # time_to_accuracy_caltech101_scratch_15m_auto_v3_progressive_cpu2.json against 112 px in
        # time_to_accuracy_caltech101_scratch_15m_recipe_from_scratch_small_images_cpu2.json)
        "progressive_resize": (True, "small images first: early epochs are much cheaper"),
    },
    "long-run": {
        # too strong for a short run: it held back the 12-epoch run from scratch in
        # benchmarks/results/time_to_accuracy_caltech101_scratch_15m_cpu2.json
        "auto_augment": ("trivialaugment", "TrivialAugment: strong augmentation for a long run"),
        "mixup_alpha": (0.2, "mixup regularises runs long enough to overfit"),
        "cutmix_alpha": (1.0, "cutmix as timm's recipes pair it with mixup"),
        "mix_prob": (0.5, "mixed batches half the time keep the clean signal"),
    },
}
