"""AppTest: the Train page's time budget sits beside the recipe, typed as on the command line
(``2m``, ``90s``), auto re-plans when it changes, and auto's reasons are said in plain words."""

from __future__ import annotations

import json
import re

import pytest
from conftest import make_colour_dataset

from modelkit.config import schema

BUDGET = "Time budget"
WHY = "Why these settings (auto)"


def test_a_budget_is_shown_the_way_it_is_typed():
    from studio.budget_input import budget_text, parse_budget

    assert [budget_text(s) for s in (0, 45, 90, 600, 5400)] == ["", "45s", "1m30s", "10m", "1h30m"]
    assert all(parse_budget(budget_text(s)) == s for s in (45, 90, 600, 3605, 5400))


def _with_dataset(open_page, app_dirs):
    at = open_page("app_pages/train.py")
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset)).run()
    assert not at.exception
    return at


def _budget(at):
    (box,) = [w for w in at.text_input if w.label == BUDGET]
    return box


def _reasons(at) -> list[str]:
    (why,) = [e for e in at.expander if e.label == WHY]
    return [m.value for m in why.markdown]


def _epochs(at) -> int:
    return next(w for w in at.number_input if w.label == "Epochs").value


def test_the_budget_sits_beside_the_recipe_and_auto_replans_for_it(open_page, app_dirs):
    at = _with_dataset(open_page, app_dirs)
    assert next(w for w in at.selectbox if w.label == "Recipe").value == "auto"
    no_budget, epochs_without = _reasons(at), _epochs(at)
    # one place to set the budget: the seconds field is gone from the form's Stopping section
    budget_label = next(s for s in schema() if s.parse).label
    assert budget_label not in {w.label for w in at.number_input}
    assert [w.label for w in at.text_input].count(budget_label) == 1  # the box by the recipe

    _budget(at).set_value("2m").run()
    assert not at.exception and not at.error
    with_budget = _reasons(at)
    assert with_budget != no_budget
    assert _epochs(at) == 60 != epochs_without  # at most 60: the budget decides how many fit
    text = "\n".join(with_budget)
    assert "**Epochs**: 60 — at most; the time budget decides" in text
    assert "2m budget" in text and "120 s" not in text  # the budget in the box's own units

    _budget(at).set_value("").run()  # empty again: no budget, auto's first plan
    assert _reasons(at) == no_budget and _epochs(at) == epochs_without


def test_a_budget_that_is_not_a_duration_is_said_under_the_box(open_page, app_dirs):
    at = _with_dataset(open_page, app_dirs)
    _budget(at).set_value("abc").run()
    assert not at.exception
    (error,) = at.error
    assert "'abc' is not a time budget" in error.value and "10m, 90s" in error.value
    launch = next(b for b in at.button if "Launch training" in b.label)
    assert launch.disabled  # nothing launches with a budget nobody meant


def test_a_run_launched_with_90s_has_a_90_second_budget(open_page, app_dirs):
    from studio.state import job_registry

    at = _with_dataset(open_page, app_dirs)
    _budget(at).set_value("90s").run()
    next(w for w in at.number_input if w.label == "Epochs").set_value(1)
    next(b for b in at.button if "Launch training" in b.label).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = job_registry().current
    job.join(600)  # a safety net for a stuck thread, not a timing
    view = job.snapshot()
    assert view.state == "finished", view.log
    run = app_dirs["runs"] / view.run_dir.split("/")[-1]
    # the winner's run, which keeps what auto measured; the run shown may be its longer run
    # (recipes.longer), whose budget is what the winner left
    run = next((r for r in run.parent.iterdir() if (r / "auto_search.json").is_file()), run)
    config = json.loads((run / "config.json").read_text())
    # auto measured the backbones at launch: their seconds came off the 90, the run has the rest
    search = run / "auto_search.json"
    spent = json.loads(search.read_text()) if search.is_file() else {}
    measured = spent.get("seconds", 0.0) + (spent.get("race") or {}).get("seconds", 0.0)
    assert config["time_budget"] == pytest.approx(90 - measured, abs=0.5)


def test_auto_says_its_choices_by_their_labels_not_their_field_names(open_page, app_dirs):
    at = _with_dataset(open_page, app_dirs)
    (why,) = [e for e in at.expander if e.label == WHY]
    shown = "\n".join(m.value for m in why.markdown)
    snake = {s.name for s in schema() if "_" in s.name}
    words = set(re.findall(r"[a-z0-9]+(?:\\?_[a-z0-9]+)+", shown))
    assert not {w.replace("\\", "") for w in words} & snake, shown
    assert "**Architecture**: smallresnet" in shown
    assert ": yes —" in shown and "True" not in shown  # a switch said as people say it
    # the field's name is still at hand, in the tooltip, for the command line
    tips = [m.proto.help for m in why.markdown]
    assert any("--image-size" in tip for tip in tips)
