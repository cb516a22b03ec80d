"""The training techniques of issue #13 that the ``auto`` recipe turns on, by situation, each with
one line of why. A table of its own so the recipe's rules and the measurements behind each entry
can be read apart; ``recipes.auto._techniques`` applies it."""

from __future__ import annotations

from typing import Any

MANY_EPOCHS = 20  # runs at least this long from scratch grow their images (on a GPU)
# ... and at least this long get strong regularisers (TrivialAugment, mixup/cutmix): Caltech-101
# from scratch, 44 epochs of ResNet-18 at half width: 0.751 without, 0.741 with mixup/cutmix
LONG_RUN_EPOCHS = 60
# Below that the head's cached passes and the fine-tuning see random crops (down to a quarter of
# the image), which show objects larger than the centre crop does: evaluating at this multiple of
# the training size shows them at about the size trained on (FixRes: ResNet-50 trained at 224
# tested best at 288). Hymenoptera (Lite0, 5 seeds, the same runs' weights): 0.949 evaluated at
# 224, 0.954 at 256, 0.958 at 288; whole runs at 288: 0.954-0.967, mean 0.959 (at 224 0.941-0.961)
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
        # no warmup_epochs: with one-cycle it sets the length of the rise; one-cycle's own 30%
        # is what the fixed recipe that did best here uses (Caltech-101 from scratch, 11 epochs:
        # 0.489 with a one-epoch rise, 0.479 with 30%, the same within noise)
        "tta": ("flip", "flipped copies at evaluation cost little and add accuracy"),
    },
    "many-epochs": {
        # Caltech-101 from scratch, 15 minutes on a 2-core CPU (12-14 epochs), same session:
        # 112 px throughout 0.596, 64 -> 112 px 0.553, 64 -> 96 px 0.524: in a short run the
        # small epochs cost more accuracy than the time they save (a 64 px step is 0.57x
        # the time of a 112 px one here, not 0.33x)
        "progressive_resize": (True, "small images first: early epochs are much cheaper"),
    },
    "long-run": {
        # Caltech-101 from scratch, 12 epochs with it: train accuracy 22% and val 35% by epoch 8
        # (the hand-picked recipe without it reached 66% in 12): too strong for a short run
        "auto_augment": ("trivialaugment", "TrivialAugment: strong augmentation for a long run"),
        "mixup_alpha": (0.2, "mixup regularises runs long enough to overfit"),
        "cutmix_alpha": (1.0, "cutmix as timm's recipes pair it with mixup"),
        "mix_prob": (0.5, "mixed batches half the time keep the clean signal"),
    },
}
