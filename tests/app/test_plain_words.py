"""AppTest: Evaluate and Runs speak plain words, with the technical term in the tooltip, and a
run's accuracy says what it is, so two figures of one run no longer look like one figure
disagreeing (issue #29, item 10)."""

from __future__ import annotations

import json
import re

import pytest

from modelkit.evaluation import calibration as cal
from modelkit.evaluation.metrics import load_evaluation
from modelkit.runs.store import load_run
from tests.app.conftest import no_exception

pytestmark = pytest.mark.slow

EVALUATE, RUNS = "app_pages/evaluate.py", "app_pages/runs.py"


def metrics(at) -> dict[str, tuple[str, str]]:
    """label: (value, tooltip) of each st.metric on the page."""
    return {m.label: (m.value, m.proto.help) for m in at.metric}


def saved_threshold(at) -> float:
    """The threshold the calibration caption says is saved."""
    found = [re.search(r"Saved[a-z ]*: (\d\.\d{3})", c.value) for c in at.caption]
    values = [float(m.group(1)) for m in found if m]
    assert len(values) == 1, [c.value for c in at.caption]
    return values[0]


def test_calibration_numbers_in_plain_words_with_the_term_in_the_tooltip(open_page, run_dir):
    report = cal.load_report(run_dir)
    at = open_page(EVALUATE)
    no_exception(at)
    shown = metrics(at)
    value, about = shown["Confidence gap (ECE)"]
    assert value == f"{report['ece_after']:.3f}"
    assert "Expected calibration error" in about and "how often it is right" in about
    value, about = shown["Log loss (NLL)"]
    assert value == f"{report['nll_after']:.3f}"
    assert "Negative log-likelihood" in about
    assert shown["Temperature"][1]  # explained too
    assert not [label for label in shown if label.startswith(("ECE", "NLL"))]


def test_the_saved_threshold_caption_shows_the_value_just_saved(open_page, run_dir):
    before = cal.load_report(run_dir)["threshold"]
    at = open_page(EVALUATE)
    assert saved_threshold(at) == pytest.approx(before, abs=1e-3)
    new = 0.9 if abs(before - 0.9) > 0.01 else 0.42
    at.slider(key=f"calibration_threshold_{run_dir.name}").set_value(new).run()
    at.button(key="calibration_save").click().run()
    no_exception(at)
    assert cal.load_report(run_dir)["threshold"] == pytest.approx(new)
    assert saved_threshold(at) == pytest.approx(new)
    assert any(f"below {new:.3f}" in s.value for s in at.success)


def test_evaluate_accuracy_says_it_was_measured_with_the_runs_tta(open_page, run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    config["tta"] = "flip"
    (run_dir / "config.json").write_text(json.dumps(config))
    ev = load_evaluation(run_dir, "val")
    at = open_page(EVALUATE)
    no_exception(at)
    value, about = metrics(at)["Val accuracy · flip TTA"]
    assert value == f"{ev.accuracy:.1%}"
    assert "mirrored" in about and "val accuracy (best epoch)" in about
    # one accuracy per run on the page: the run picker shows none beside the headline's
    assert not any("%" in option for option in at.selectbox(key="evaluate_run").options)


def test_runs_table_labels_its_accuracy_as_the_training_best_epoch(open_page, run_dir):
    at = open_page(RUNS)
    no_exception(at)
    table = next(df.value for df in at.dataframe if "run" in df.value.columns)
    assert "val accuracy (best epoch)" in table.columns
    assert "best val acc" not in table.columns
    assert table["val accuracy (best epoch)"][0] == pytest.approx(load_run(run_dir).best_val_acc)


def test_embeddings_tab_names_rsa_in_plain_words(open_page, run_dir):
    at = open_page(EVALUATE)
    no_exception(at)
    assert any("representational similarity analysis, RSA" in c.value for c in at.caption)


def test_the_proposed_threshold_answers_the_images_it_was_chosen_for(open_page, run_dir):
    """A proposal on the curve at 0.4296 shown as 0.430 answered nothing: the caption said 0% of
    the images while the chart marked the proposal at half of them."""
    path = run_dir / "calibration.json"
    report = json.loads(path.read_text())
    report["curve"] = {"threshold": [0.4296, 0.3], "coverage": [0.5, 1.0], "accuracy": [1.0, 0.6]}
    report["samples"], report["target_accuracy"] = 0, 0.95
    path.write_text(json.dumps(report))
    at = open_page(EVALUATE)
    no_exception(at)
    assert at.slider(key=f"calibration_threshold_{run_dir.name}").value <= 0.4296
    assert any("answers 50% of validation images, 100.0% of them" in c.value for c in at.caption)
