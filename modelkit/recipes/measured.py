"""``auto`` measured as a run starts from a form: a page shows auto's choice from the folder
alone (instant), and the person may change any field of it; when they launch, the backbones are
measured and the paths raced on the training images (minutes, in the job's thread, as
``modelkit train`` does before its run), with what they changed kept as given.
"""

from __future__ import annotations

from typing import Any

from modelkit.config import TrainConfig
from modelkit.config.defaults import config_defaults
from modelkit.recipes.presets import AUTO
from modelkit.recipes.resolve import GIVEN, Resolved, resolve

Measured = tuple[TrainConfig, list[str], dict[str, Any] | None]


def changed_in_form(form: TrainConfig, shown: Resolved) -> dict[str, Any]:
    """What the person gave, which measuring must not choose again: the fields of ``form``
    that differ from what was shown (``shown``'s settings, else TrainConfig's defaults), and
    those the shown settings had from them already (the budget box)."""
    default = config_defaults()
    return {
        name: value
        for name, value in form.to_dict().items()
        if value != shown.settings.get(name, default.get(name)) or shown.sources.get(name) == GIVEN
    }


def measure_auto(form: TrainConfig, shown: Resolved, **resolve_args: Any) -> Measured:
    """(the measured run's config, the notes for its log, what auto measured for
    auto_search.json). ``resolve_args``: the page's own layers (its start, a suggestion)."""
    given = changed_in_form(form, shown)
    out = resolve(AUTO, given, dataset=form.data_dir, measure=True, **resolve_args)
    config = TrainConfig(**{"data_dir": form.data_dir, **out.settings})
    probe = out.auto.facts.probe if out.auto and out.auto.facts else None
    return config, out.note.splitlines(), probe.to_dict() if probe else None
