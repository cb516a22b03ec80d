"""Recipes: the fixed presets, ``auto`` (settings chosen from the data, the weights, the device
and the time a person has), and the one resolver that composes a run's settings for every front
end. Light to import: ``auto`` and the weights are loaded when first asked for."""

from modelkit.recipes.presets import AUTO, CPU_START, NAMES, PRESETS, TRIAL_START, recipe
from modelkit.recipes.resolve import Resolved, resolve, resolve_settings

__all__ = [
    "AUTO", "CPU_START", "NAMES", "PRESETS", "TRIAL_START", "Resolved", "recipe", "resolve",
    "resolve_settings",
]  # fmt: skip
