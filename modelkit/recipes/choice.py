"""The recipe ``auto`` is choosing: a fixed recipe less what the person gave, and each change
with one line of why, so a person (and the run's log) can see what was chosen and on what
grounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelkit.config.defaults import config_defaults
from modelkit.recipes.facts import Facts
from modelkit.recipes.presets import ABOUT, PRESETS

FEW_PER_CLASS = 300  # fewer training images a class than this: train the head first
# what a backbone the person froze rules out: a phase that unfreezes it, stage maps to fine-tune
WITH_FROZEN_BACKBONE = {"head_epochs": 0, "cache_frozen_stages": False}


@dataclass
class AutoRecipe:
    """The settings chosen, and for each change from the recipe it started from one line of
    why (in the order chosen)."""

    settings: dict[str, Any]
    reasons: list[tuple[str, Any, str]] = field(default_factory=list)  # (field or "", value, why)
    facts: Facts | None = None
    start: str = ""  # the fixed recipe it started from

    def lines(self, config: Any = None) -> list[str]:
        """One line per choice; given the ``config`` a run starts with, only the choices it
        kept (a person may have changed some on the form)."""
        out = []
        for name, value, why in self.reasons:
            if name and config is not None and getattr(config, name, value) != value:
                continue
            out.append(f"auto: {name} = {value} ({why})" if name else f"auto: {value} ({why})")
        return out


class Choice:
    """The recipe being chosen: starts as a preset less what the person gave; ``pick`` changes
    a value, and says why."""

    def __init__(self, facts: Facts, explicit: dict[str, Any], start: str, why: str):
        self.facts, self.explicit, self.start = facts, explicit, start
        self.base = {k: v for k, v in PRESETS[start].items() if k not in explicit}
        self.out = AutoRecipe(dict(self.base), [], facts, start)
        self.out.reasons.append(("", f"started from the {start} recipe: {ABOUT[start]}", why))
        self.per_class = facts.images / max(facts.classes, 1)
        self.frozen = bool(explicit.get("freeze_backbone"))
        for name, value in WITH_FROZEN_BACKBONE.items() if self.frozen else ():
            if name not in explicit:
                self.out.settings[name] = value
                self.out.reasons.append((name, value, "you froze the backbone"))
        if "head_epochs" in self.base and "epochs" in explicit:
            self.out.settings["head_epochs"] = self._within_epochs(self.base["head_epochs"])

    def _within_epochs(self, head_epochs: int) -> int:
        """The head's epochs within the epochs the person gave: the fine-tuning phase needs
        one at least (one epoch in all: a single phase)."""
        if "epochs" not in self.explicit:
            return head_epochs
        return min(int(head_epochs), max(int(self.explicit["epochs"]) - 1, 0))

    def pick(self, name: str, value: Any, why: str) -> None:
        if name in self.explicit or (self.frozen and name in WITH_FROZEN_BACKBONE):
            return
        if name == "head_epochs" and value != self._within_epochs(value):
            value = self._within_epochs(value)
            why += f"; at most {value} within the {self.explicit['epochs']} epochs you gave"
        self.out.settings[name] = value
        self.out.reasons.append((name, value, why))

    def drop(self, names: tuple[str, ...], why: str) -> None:
        """Set the preset's ``names`` back to TrainConfig's defaults."""
        default = config_defaults()
        for name in names:
            if name in self.base:
                self.pick(name, default[name], why)

    def value(self, name: str, default: Any = None) -> Any:
        """What the run will use: the person's value, else the one chosen."""
        return self.explicit.get(name, self.out.settings.get(name, default))
