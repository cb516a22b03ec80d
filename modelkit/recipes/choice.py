"""The recipe ``auto`` is choosing: a fixed recipe less what the person gave, and each change
with one line of why, so a person (and the run's log) can see what was chosen and on what
grounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelkit.config import schema
from modelkit.recipes.facts import Facts
from modelkit.recipes.presets import ABOUT, PRESETS

FEW_PER_CLASS = 300  # fewer training images a class than this: train the head first


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

    def pick(self, name: str, value: Any, why: str) -> None:
        if name in self.explicit:
            return
        self.out.settings[name] = value
        self.out.reasons.append((name, value, why))

    def drop(self, names: tuple[str, ...], why: str) -> None:
        """Set the preset's ``names`` back to TrainConfig's defaults."""
        defaults = {s.name: s.default for s in schema()}
        for name in names:
            if name in self.base:
                self.pick(name, defaults[name], why)

    def value(self, name: str, default: Any = None) -> Any:
        """What the run will use: the person's value, else the one chosen."""
        return self.explicit.get(name, self.out.settings.get(name, default))
