"""The Train and Tune forms are generated from TrainConfig's schema: no page writes a field name
by hand, and every field can be set from the form and reaches the config that is launched."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO, make_colour_dataset

from modelkit.config import TrainConfig, schema
from modelkit.recipes.measured import changed_in_form

# Strings in app_pages/ and studio/ that are a field's name by coincidence, not the field.
NOT_THE_FIELD = {
    ("app_pages/evaluate.py", "precision"): "per-class precision, a metric column",
    ("app_pages/runs.py", "epochs"): "the Runs table's column header",
    ("studio/figures.py", "lr"): "the learning rate logged in metrics.jsonl",
}


def test_no_config_field_name_is_written_in_pages_or_studio():
    names = {s.name for s in schema()}
    found = []
    for path in sorted([*REPO.glob("app_pages/**/*.py"), *REPO.glob("studio/**/*.py")]):
        where = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg in names:
                found.append(f"{where}:{node.lineno}: keyword {node.arg}=")
            literal = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if literal and node.value in names and (where, node.value) not in NOT_THE_FIELD:
                found.append(f"{where}:{node.lineno}: string {node.value!r}")
    assert not found, "use the schema (studio.config_form), not field names:\n" + "\n".join(found)


def _new_value(s, dataset: Path, tmp: Path):
    """A valid value other than the default for setting ``s``, and how to enter it."""
    if s.widget == "starting_weights":
        return str(tmp / "weights.pt")
    if s.widget == "runs_folder":
        return str(tmp / "elsewhere")
    if s.choices is not None:
        return next(c for c in s.choices if c != s.default)
    if s.base is bool:
        return not s.default
    if s.base is list:
        return [64, 32]
    if s.base is str:
        return "my-run"
    if s.default is None:
        return 0.005
    step = s.step or 1
    value = s.default + step
    if s.bounds is not None and value not in s.bounds:
        value = s.default - step
    return s.base(value)


def _enter(at, s, value) -> None:
    if s.parse is not None:  # the time budget: its own box beside the recipe, typed as 1m
        from studio.budget_input import BUDGET_LABEL, budget_text

        (box,) = [w for w in at.text_input if w.label == BUDGET_LABEL]
        box.set_value(budget_text(value))
        return
    if s.widget == "starting_weights":
        next(w for w in at.selectbox if w.label == s.label).set_value("File or run folder")
        next(w for w in at.text_input if w.label == "Weights file or run folder").set_value(value)
        return
    if s.choices is not None:
        widgets = at.selectbox
    elif s.base is bool:
        widgets = at.checkbox
    elif s.base in (str, list):
        widgets = at.text_input
        value = ",".join(map(str, value)) if s.base is list else value
    else:
        widgets = at.number_input
    (widget,) = [w for w in widgets if w.label == s.label]
    widget.set_value(value)


@pytest.fixture
def launched(monkeypatch) -> list[TrainConfig]:
    """Configs the Train page launches, recorded instead of trained; with auto, the config the
    job would measure its way to (recipes.measured) is recorded too."""
    from modelkit.jobs import JobRegistry

    configs: list[TrainConfig] = []

    def launch(self, config, notes=None, measure=None):
        configs.append(config)
        if measure is not None:  # what the person changed from auto's form stays theirs
            given = changed_in_form(config, measure.args[1])
            measured = measure()[0]
            configs.append({name: getattr(measured, name) == v for name, v in given.items()})

    monkeypatch.setattr(JobRegistry, "launch", launch)
    return configs


# fields entered in a pass of their own, with the fields they need: freeze_backbone contradicts
# two-phase training (head_epochs), cached stage maps contradict mixup, and the first pass turns
# both of those on
ALONE = {"freeze_backbone": set(), "cache_frozen_stages": {"frozen_stages"}}


@pytest.mark.parametrize("alone", ["", *ALONE], ids=["most-fields", *ALONE])
def test_every_field_is_reachable_from_the_train_form(
    open_page, app_dirs, tmp_path, launched, alone
):
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=2)
    at = open_page("app_pages/train.py")
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset)).run()
    wanted = {}
    schema_names = [s.name for s in schema()]
    # the budget first: auto re-plans for it, and the form then starts from the new plan
    for s in sorted(schema(), key=lambda s: s.parse is None):
        this_pass = {alone, *ALONE[alone]} if alone else set(schema_names) - set(ALONE)
        if s.widget == "dataset" or s.name not in this_pass:
            continue
        wanted[s.name] = _new_value(s, dataset, tmp_path)
        _enter(at, s, wanted[s.name])
        if s.parse is not None:
            at.run()
    next(b for b in at.button if "Launch training" in b.label).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    form, kept = launched
    assert form.data_dir == str(dataset)
    got = {name: getattr(form, name) for name in wanted}
    assert got == wanted
    assert all(got[n] != s.default for s in schema() if (n := s.name) in got)
    # auto, measured as the run starts, keeps every value that differs from what it showed
    assert kept and all(kept.values()), [name for name, same in kept.items() if not same]


def test_the_tune_form_builds_the_trials_config_from_the_same_schema(
    open_page, app_dirs, monkeypatch
):
    from app_pages._tune_state import TuneRegistry

    started = []
    monkeypatch.setattr(TuneRegistry, "start", lambda self, job: started.append(job))
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=2)
    at = open_page("app_pages/tune.py")
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset))
    rotation = next(s for s in schema() if s.label == "Rotation ±°")
    _enter(at, rotation, 12.0)
    # each trial's budget, in the Stopping section, is typed like the Train page's: 5m
    (trial_budget,) = [w for w in at.text_input if w.label == "Time budget"]
    trial_budget.set_value("5m")
    next(b for b in at.button if "Start search" in b.label).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (job,) = started
    assert job.base.rotation == 12.0 and job.base.data_dir == str(dataset)
    assert job.base.time_budget == 300
    assert job.base.weights == "none"  # trials start from random weights unless told otherwise


def test_a_bad_value_is_reported_by_its_label(open_page, app_dirs, launched):
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=2)
    at = open_page("app_pages/train.py")
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset)).run()
    next(w for w in at.text_input if w.label == "Hidden sizes (mlp)").set_value("64,x")
    next(w for w in at.number_input if w.label == "Test share").set_value(1.0)
    next(b for b in at.button if "Launch training" in b.label).click().run()
    assert not launched
    (error,) = at.error  # every problem at once, by the label the person sees
    assert "Hidden sizes (mlp) (head_hidden): expected numbers" in error.value
    assert "Test share (test_ratio): must be in [0, 1)" in error.value
