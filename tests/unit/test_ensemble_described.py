"""Where a person meets an ensemble run outside the app (the run list, a resume, a retrain, the
report), it is described by the runs it averages, never by training settings it does not have."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from helpers import fast_config, write_dataset

from modelkit.cli.main import main
from modelkit.report import write_report
from modelkit.runs.ensemble import build_ensemble_run
from modelkit.runs.members import NoTrainingSettings, training_config
from modelkit.runs.store import load_run
from modelkit.training.errors import TrainingError
from modelkit.training.loop import Trainer


def sections(report: Path) -> dict[str, str]:
    """The text of each section of the report, as a reader sees it (tags gone, entities read)."""
    page = report.read_text(encoding="utf-8")
    found = re.findall(r'<section id="([^"]+)".*?>(.*?)</section>', page, re.S)
    return {sid: html.unescape(re.sub(r"<[^>]+>", " ", body)) for sid, body in found}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny runs on one data set and split, and their ensemble beside them."""
    base = tmp_path_factory.mktemp("described")
    data = write_dataset(base / "data", num_classes=3, per_class=8, seed=2)
    out = {"runs_dir": base / "runs"}
    for key, lr in (("a", 0.01), ("b", 0.02)):
        config = fast_config(
            data, out["runs_dir"], run_name=key, arch="smallresnet", lr=lr, tensorboard=False
        )
        result = Trainer(config).fit()
        assert result.state == "finished"
        out[key] = result.run_dir
    out["ensemble"] = build_ensemble_run([out["a"], out["b"]], out["runs_dir"], "duo", "cpu")
    return out


def test_the_run_list_says_what_an_ensemble_averages(runs, capsys):
    a, b = runs["a"].name, runs["b"].name
    said = f"ensemble of {a} + {b} (32 px)"
    assert load_run(runs["ensemble"]).summary() == said
    assert main(["runs", "--runs-dir", str(runs["runs_dir"])]) == 0
    line = next(
        x for x in capsys.readouterr().out.splitlines() if x.startswith(runs["ensemble"].name)
    )
    assert line.endswith(said) and "?" not in line and "0/0" not in line  # it trains no epoch
    assert load_run(runs["a"]).summary().startswith("smallresnet 32px")  # a trained run as before


def test_resume_and_retrain_name_the_runs_to_train_instead(runs, capsys):
    a, b = runs["a"].name, runs["b"].name
    plain = f"an ensemble run has no training settings of its own: it averages runs {a} and {b}"
    with pytest.raises(TrainingError, match=plain):
        Trainer.resume(runs["ensemble"])
    assert main(["train", "--resume", str(runs["ensemble"])]) != 0
    err = capsys.readouterr().err
    assert plain in err and "Traceback" not in err and "unknown keys" not in err
    with pytest.raises(NoTrainingSettings, match=plain):
        training_config(runs["ensemble"])
    assert training_config(runs["a"]).arch == "smallresnet"  # a trained run trains again


def test_the_report_names_the_members_and_their_accuracy_where_curves_would_be(runs, tmp_path):
    page = sections(write_report(runs["ensemble"], tmp_path / "report.html"))
    curves = page["curves"]
    assert "no epochs of its own" in curves
    for key in ("a", "b"):
        acc = load_run(runs[key]).best_val_acc
        assert f"{runs[key].name} (best val accuracy {acc:.1%})" in curves
    assert "no per-epoch metrics" not in curves
    assert "no training settings of its own" in page["settings"]
    # the ensemble copied away from its runs still says which they were
    alone = Path(shutil.copytree(runs["ensemble"], tmp_path / "elsewhere" / "duo"))
    curves = sections(write_report(alone, tmp_path / "alone.html"))["curves"]
    assert f"{runs['a'].name} (not in this runs folder)" in curves
