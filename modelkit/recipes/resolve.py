"""The one way the settings of a new run are composed, whichever front end asks (the command
line, the Train and Tune pages, the benchmarks), each value tagged with where it came from.

Highest first: what the person gave (flags, the form), a suggestion they took (the LR finder's
rate), the recipe or ``auto``, the architecture default (ResNet-18 where its ImageNet weights
can be had, else the bundled EfficientNet-Lite0), and where the front end starts (a short first
run on a CPU, the Tune page's trials). Anything left is TrainConfig's own default.
"""

from __future__ import annotations

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
) -> Resolved:
    """The settings of a new run with recipe ``name`` ("" or "none": no recipe; ``auto`` looks
    at the ``dataset`` folder). ``check_weights``: ImageNet weights that cannot be had stop
    here, with a message offering the bundled backbone, not in the middle of a run (the pages
    check at launch instead, so the form can still be changed). ``measure``: ``auto`` scores
    the bundled backbones on the training images first (as a run starts, not for a preview);
    the seconds that takes come off the time budget."""
    from modelkit.models.weights import check_starting_weights, with_default_arch

    given = dict(given or {})
    out = Resolved({})
    _layer(out, start or {}, start_source)
    if name == AUTO:
        from modelkit.recipes.auto import auto_recipe

        out.auto = auto_recipe(dataset, given, probe_network=probe_network, measure=measure)
        _layer(out, out.auto.settings, AUTO)
        probe = out.auto.facts.probe if out.auto.facts else None
        if probe is not None:
            out.notes += [
                f"auto: measured backbones ({probe.folds}-fold, held out from the "
                f"{probe.images} training images sampled; val untouched):"
            ]
            out.notes += [f"auto:   {line}" for line in probe.table()]
            if given.get("time_budget"):
                given["time_budget"] = out.auto.facts.time_budget  # the probe's time is spent
                out.notes.append(
                    f"auto: {probe.seconds:.0f} s of the budget measured them; "
                    f"{given['time_budget']:.0f} s are left to train"
                )
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
