"""The one way the settings of a new run are composed, whichever front end asks (the command
line, the Train and Tune pages, the benchmarks), each value tagged with where it came from.

Highest first: what the person gave (flags, the form), a suggestion they took (the LR finder's
rate), the recipe or ``auto``, the architecture default (ResNet-18 where its ImageNet weights
can be had, else the bundled EfficientNet-Lite0), and where the front end starts (a short first
run on a CPU, the Tune page's trials). Anything left is TrainConfig's own default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelkit.recipes.presets import AUTO, recipe

if TYPE_CHECKING:
    from modelkit.recipes.auto import AutoRecipe

GIVEN = "given"  # the person's own value
ARCHITECTURE = "architecture default"


@dataclass
class Resolved:
    """Settings for TrainConfig, where each came from, and what to tell the person."""

    settings: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)  # setting -> its layer's name
    notes: list[str] = field(default_factory=list)  # auto's reasons, the architecture fallback
    auto: AutoRecipe | None = None  # auto's choice, when it chose

    @property
    def note(self) -> str:
        return "\n".join(self.notes)

    def where(self) -> list[tuple[str, Any, str]]:
        """(setting, value, where it came from), in the order composed, for a page to show."""
        return [(name, self.settings[name], self.sources[name]) for name in self.settings]


def resolve(
    name: str,
    given: dict[str, Any] | None = None,
    *,
    start: dict[str, Any] | None = None,
    start_source: str = "start",
    suggested: dict[str, Any] | None = None,
    suggested_source: str = "suggestion",
    dataset: str = "",
    probe_network: bool = True,
    check_weights: bool = True,
    measure: bool = False,
    race: bool | None = None,
) -> Resolved:
    """The settings of a new run with recipe ``name`` ("" or "none": no recipe; ``auto`` looks
    at the ``dataset`` folder). ``check_weights``: ImageNet weights that cannot be had stop
    here, with a message offering the bundled backbone, not in the middle of a run (the pages
    check at launch instead, so the form can still be changed). ``measure``: ``auto`` scores
    the bundled backbones on the training images first (as a run starts, not for a preview);
    the seconds that takes come off the time budget. ``race``: then the paths open to it race
    on training images held out from the rest (``modelkit.recipes.race``) where the budget
    allows; None: as the environment's MODELKIT_AUTO_RACE says (on unless "0")."""
    from modelkit.models.weights import check_starting_weights, with_default_arch

    given = dict(given or {})
    out = Resolved({})
    _layer(out, start or {}, start_source)
    if name == AUTO:
        from modelkit.recipes.auto import auto_recipe

        out.auto = auto_recipe(dataset, given, probe_network=probe_network, measure=measure)
        if measure and _race_on(race):
            from modelkit.recipes.race import race_auto

            out.auto = race_auto(out.auto, dataset, given)
        _layer(out, out.auto.settings, AUTO)
        out.notes += _measured(out.auto.facts, given, measure and _race_on(race))
        out.notes += out.auto.lines()
    else:
        _layer(out, recipe(name), f"recipe {name}")
    _layer(out, suggested or {}, suggested_source)
    _layer(out, given, GIVEN)
    filled, note = with_default_arch(out.settings, probe_network)
    if "arch" not in out.settings and "arch" in filled:
        _layer(out, {"arch": filled["arch"]}, ARCHITECTURE)
        out.notes += [note] if note else []
    if check_weights and "arch" in out.settings:
        check_starting_weights(
            out.settings["arch"], out.settings.get("weights", "imagenet"), probe_network
        )
    return out


def _race_on(race: bool | None) -> bool:
    """``race`` as given, else MODELKIT_AUTO_RACE (on unless "0"): the switch a benchmark
    turns off to compare auto with and without its race."""
    return race if race is not None else os.environ.get("MODELKIT_AUTO_RACE", "1") != "0"


def _measured(facts: Any, given: dict[str, Any], raced: bool) -> list[str]:
    """What auto measured as notes: the probe's table, the race's (or why none ran) and the
    seconds they took from a given budget (``given``'s budget becomes what is left)."""
    probe = facts.probe if facts else None
    if probe is None:
        return []
    notes = [
        f"auto: measured backbones ({probe.folds}-fold, held out from the "
        f"{probe.images} training images sampled; val untouched):"
    ]
    notes += [f"auto:   {line}" for line in probe.table()]
    race = facts.race
    if race is not None and race.winner:
        notes.append(
            f"auto: raced {len(race.paths)} paths by successive halving, trained on "
            f"{race.images} training images and judged on {race.heldout} others held out "
            f"from them (val untouched), {race.seconds:.0f} s:"
        )
        notes += [f"auto:   {line}" for line in race.table()]
        notes += [f"auto:   {line}" for line in race.notes]
        notes.append(f"auto: the race's winner: {race.winner} ({race.why})")
    elif raced and race is not None:
        notes.append(f"auto: no race ({race.skipped}): auto's choice stands, unmeasured")
    if given.get("time_budget"):
        given["time_budget"] = facts.time_budget  # the probe's (and race's) time is spent
        spent = f" and {race.seconds:.0f} s raced the paths" if race and race.winner else ""
        notes.append(
            f"auto: {probe.seconds:.0f} s of the budget measured them{spent}; "
            f"{given['time_budget']:.0f} s are left to train"
        )
    return notes


def _layer(out: Resolved, values: dict[str, Any], source: str) -> None:
    for key, value in values.items():
        out.settings[key] = value
        out.sources[key] = source


def resolve_settings(
    name: str,
    explicit: dict[str, Any],
    probe_network: bool = True,
    data_dir: str = "",
    measure: bool = False,
) -> tuple[dict[str, Any], str]:
    """``resolve`` as (settings, note), for callers that need no sources (the CLI's train,
    tune and lr-find, the benchmarks)."""
    out = resolve(name, explicit, dataset=data_dir, probe_network=probe_network, measure=measure)
    return out.settings, out.note
