"""Predictor and evaluate_run: the same numbers as the run's own evaluation, for any input."""

from __future__ import annotations

import csv
import io
import shutil

import pytest
import torch
from PIL import Image

from modelkit.evaluation.evaluate import EvaluationError, evaluate_run
from modelkit.evaluation.metrics import load_evaluation
from modelkit.models.checkpoint import CheckpointError
from modelkit.runs.store import read_json
from modelkit.serving.predictor import Prediction, Predictor, resolve_checkpoint


@pytest.fixture(scope="module")
def predictor(trained_run) -> Predictor:
    return Predictor(trained_run, device="cpu")  # the device the run was evaluated on


def saved_predictions(run_dir) -> list[dict]:
    with open(run_dir / "evaluation" / "predictions_val.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_predictor_agrees_with_the_runs_evaluation(trained_run, predictor):
    rows = saved_predictions(trained_run)
    assert len(rows) == 6
    for row in rows:
        p = predictor.predict(row["path"])
        assert p.error == "" and p.source == row["path"]
        assert p.label == row["predicted"]
        assert p.confidence == pytest.approx(float(row["confidence"]), abs=1e-4)
    # the batch path gives the same numbers as one at a time
    many = predictor.predict_many([r["path"] for r in rows])
    for p, row in zip(many, rows):
        assert p.confidence == pytest.approx(float(row["confidence"]), abs=1e-4)


def test_evaluate_run_reproduces_the_saved_evaluation(trained_run):
    saved = load_evaluation(trained_run, "val")
    assert saved is not None
    again = evaluate_run(trained_run, "val", device="cpu", save=False)
    assert again.accuracy == pytest.approx(saved.accuracy)
    assert again.confusion_matrix == saved.confusion_matrix
    assert again.loss == pytest.approx(saved.loss, abs=1e-4)
    for a, b in zip(again.predictions, saved.predictions):
        assert a["path"] == b["path"] and a["predicted"] == b["predicted"]
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)


def test_evaluate_other_splits_and_bad_folders(trained_run, tmp_path):
    train_ev = evaluate_run(trained_run, "train", device="cpu", save=False)
    assert sum(map(sum, train_ev.confusion_matrix)) == 24
    with pytest.raises(EvaluationError, match="has no 'test' split.*train, val"):
        evaluate_run(trained_run, "test", save=False)
    with pytest.raises(EvaluationError, match="not a run folder"):
        evaluate_run(tmp_path, "val")


def test_evaluate_skips_files_that_no_longer_decode(trained_run, tmp_path):
    run = tmp_path / trained_run.name
    shutil.copytree(trained_run, run)
    splits = read_json(run / "splits.json")
    gone = splits["val"][0][0]
    splits["val"][0][0] = str(tmp_path / "moved-away.png")
    (run / "splits.json").write_text(__import__("json").dumps(splits))
    ev = evaluate_run(run, "val")
    assert len(ev.predictions) == 5 and gone not in [p["path"] for p in ev.predictions]
    assert load_evaluation(run, "val").predictions == ev.predictions


def test_bytes_file_objects_and_pil_images(trained_run, predictor):
    path = saved_predictions(trained_run)[0]["path"]
    by_path = predictor.predict(path, top_k=3)
    data = open(path, "rb").read()
    by_bytes = predictor.predict(data, top_k=3)
    by_file = predictor.predict(io.BytesIO(data), top_k=3)
    by_pil = predictor.predict(Image.open(path), top_k=3)
    for p in (by_bytes, by_file, by_pil):
        assert p.error == "" and p.labels == by_path.labels
        assert p.probabilities == pytest.approx(by_path.probabilities, abs=1e-6)
    assert by_bytes.source == "<image>"
    # an RGBA or greyscale image works too
    grey = Image.open(path).convert("L")
    assert predictor.predict(grey).error == ""


def test_top_k_and_probabilities(trained_run, predictor):
    path = saved_predictions(trained_run)[0]["path"]
    p = predictor.predict(path, top_k=10)
    assert sorted(p.labels) == ["blue", "green", "red"]  # capped at the number of classes
    assert p.probabilities == sorted(p.probabilities, reverse=True)
    assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-5)
    one = predictor.predict(path, top_k=1)
    assert one.labels == [p.label] and one.confidence == pytest.approx(p.confidence)


def test_predict_many_reports_a_bad_file_and_goes_on(trained_run, predictor, tmp_path):
    good = [r["path"] for r in saved_predictions(trained_run)[:3]]
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    missing = tmp_path / "missing.jpg"
    sources = [good[0], str(notes), good[1], str(missing), good[2]]
    results = predictor.predict_many(sources, top_k=2)
    assert [r.source for r in results] == sources
    assert [bool(r.error) for r in results] == [False, True, False, True, False]
    assert str(notes) in results[1].error and "not an image" in results[1].error
    assert str(missing) in results[3].error and "not found" in results[3].error
    assert results[1].labels == [] and results[1].label == "" and results[1].confidence == 0.0
    assert all(len(r.labels) == 2 for r in results if not r.error)
    named = predictor.predict_many([open(good[0], "rb").read()], names=["upload.png"])
    assert named[0].source == "upload.png"
    assert predictor.predict_many([]) == []


def test_predictor_on_a_non_modelkit_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(torch.nn.Linear(3, 3).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a modelkit checkpoint"):
        Predictor(path)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="damaged"):
        Predictor(corrupt)
    with pytest.raises(CheckpointError, match="not found"):
        Predictor(tmp_path / "empty-run")


def test_run_folder_resolves_to_best_then_last(tmp_path, helpers):
    run = tmp_path / "run"
    last = helpers.write_checkpoint(run / "checkpoints" / "last.pt")
    assert resolve_checkpoint(run) == last
    best = helpers.write_checkpoint(run / "checkpoints" / "best.pt")
    assert resolve_checkpoint(run) == best
    assert resolve_checkpoint(last) == last
    p = Predictor(run, device="cpu")
    assert p.classes == ["red", "green", "blue"] and p.image_size == 32


def test_prediction_defaults():
    p = Prediction("x", [], [], error="x: broken")
    assert p.label == "" and p.confidence == 0.0
