"""What a search searches: the ranges of the settings each trial draws (learning rate, weight
decay, batch size, and what the person adds). Apart from the search itself, so the results can
say which settings a trial chose without importing the search that ran it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from modelkit.config import OPTIMIZERS

OPTIONAL = ("optimizer", "dropout", "augmentation")  # searched only when asked for
# The settings the one "augmentation" strength drives together.
AUGMENTATION_FIELDS = ("crop_scale_min", "rotation", "brightness", "contrast", "saturation")
LOG_SCALE = ("lr", "weight_decay")  # drawn log-uniform: their values span decades


@dataclass
class SearchSpace:
    lr: tuple[float, float] = (1e-4, 1e-1)  # log-uniform
    weight_decay: tuple[float, float] = (1e-6, 1e-2)  # log-uniform
    batch_sizes: tuple[int, ...] = (8, 16, 32)
    extra: tuple[str, ...] = ()  # any of OPTIONAL

    def __post_init__(self) -> None:
        unknown = sorted(set(self.extra) - set(OPTIONAL))
        if unknown:
            from modelkit.config import ConfigError

            raise ConfigError(f"search: unknown {unknown}; choose from {list(OPTIONAL)}")

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """TrainConfig settings for one trial."""
        s: dict[str, Any] = {
            name: trial.suggest_float(name, *getattr(self, name), log=True) for name in LOG_SCALE
        } | {"batch_size": trial.suggest_categorical("batch_size", list(self.batch_sizes))}
        if "optimizer" in self.extra:
            s["optimizer"] = trial.suggest_categorical("optimizer", list(OPTIMIZERS))
        if "dropout" in self.extra:
            s["head_dropout"] = trial.suggest_float("head_dropout", 0.0, 0.5)
        if "augmentation" in self.extra:
            # one strength knob drives the usual augmentations together
            k = trial.suggest_float("augmentation", 0.0, 1.0)
            s.update(
                crop_scale_min=round(1.0 - 0.75 * k, 3),
                rotation=round(20.0 * k, 2),
                brightness=round(0.4 * k, 3),
                contrast=round(0.4 * k, 3),
                saturation=round(0.4 * k, 3),
            )
        return s
