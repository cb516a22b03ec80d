"""Temperature scaling and the "unknown" threshold: fitted on validation, applied everywhere."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from modelkit.evaluation import calibration as cal
from modelkit.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from modelkit.serving.predictor import Predictor


def overconfident(n: int = 2000, classes: int = 5, seed: int = 0):
    """Logits of a model right ~70% of the time that says ~99%: true logits scaled by 4."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    logits = torch.randn(n, classes, generator=g)
    logits[torch.arange(n), labels] += 1.5
    return logits * 4, labels


def test_temperature_lowers_nll_and_ece_of_overconfident_logits():
    logits, labels = overconfident()
    result = cal.calibrate_logits(logits, labels)
    assert result.temperature > 2  # it softens an over-confident model
    assert result.nll_after < result.nll_before
    assert result.ece_after < result.ece_before / 2
    assert result.ece_after < 0.05
    # accuracy is untouched: the winner of every row is the same
    assert torch.equal((logits / result.temperature).argmax(1), logits.argmax(1))
    # the bins say what the diagram draws
    assert sum(b["count"] for b in result.bins_after) == len(labels)
    assert result.samples == len(labels)


def test_a_calibrated_model_keeps_a_temperature_near_one():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4000, 3, generator=g) * 2
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=g)[:, 0]
    assert cal.fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.1)


def test_the_threshold_gives_the_target_accuracy_on_answered_images():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 5000)
    correct = rng.uniform(size=5000) < confidence  # calibrated scores by construction
    threshold, reached = cal.threshold_for_accuracy(confidence, correct, 0.9)
    coverage, accuracy = cal.answered_at(confidence, correct, threshold)
    assert reached and accuracy >= 0.9
    assert 0.2 < coverage < 0.5  # answered accuracy 0.9 needs confidence above ~0.8
    # with a margin: the answered images' accuracy clears the target by about a standard error,
    # and without it the threshold is the lowest that reaches the target at all
    answered = round(coverage * len(confidence))
    assert accuracy - 0.9 >= 0.5 * np.sqrt(0.9 * 0.1 / answered)
    bare, _ = cal.threshold_for_accuracy(confidence, correct, 0.9, z=0.0)
    assert bare < threshold
    assert cal.answered_at(confidence, correct, bare)[1] >= 0.9
    assert cal.answered_at(confidence, correct, bare - 0.02)[1] < 0.9
    # new images from the same source, answered at the threshold, reach the target too
    fresh = rng.uniform(0.3, 1.0, 20000)
    assert cal.answered_at(fresh, rng.uniform(size=20000) < fresh, threshold)[1] >= 0.9
    # an unreachable target says so and keeps the most accurate threshold
    threshold, reached = cal.threshold_for_accuracy(confidence, np.zeros(5000, bool), 0.9)
    assert not reached


def test_reliability_and_ece_by_hand():
    confidence = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, False, True, True])
    # bins: 0.95 -> accuracy 0.5 (gap .45), 0.55 -> accuracy 1 (gap .45)
    assert cal.expected_calibration_error(confidence, correct) == pytest.approx(0.45)
    assert cal.expected_calibration_error(np.zeros(0), np.zeros(0, bool)) == 0.0


@pytest.fixture
def run(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def test_a_finished_run_is_calibrated_and_the_predictor_applies_it(run):
    payload = load_checkpoint(run / "checkpoints" / "best.pt")
    record = payload["calibration"]
    assert set(record) == {"temperature", "threshold", "target_accuracy"}
    report = cal.load_report(run)
    assert report is not None and report["temperature"] == record["temperature"]
    predictor = Predictor(run, device="cpu")
    assert predictor.temperature == pytest.approx(record["temperature"])


def test_predictor_applies_temperature_and_unknown(run, draw_image):
    image = draw_image((200, 40, 40), "checker")
    cal.set_threshold(run, 0.0)
    plain = Predictor(run, device="cpu")
    raw = torch.softmax(plain.logits([plain.preprocess(image)]), 1).max().item()
    checkpoint = run / "checkpoints" / "best.pt"
    payload = load_checkpoint(checkpoint)
    payload["calibration"] = {"temperature": 3.0, "threshold": 0.0, "target_accuracy": 0.95}
    save_checkpoint(checkpoint, payload)
    soft = Predictor(run, device="cpu").predict(image)
    expected = torch.softmax(plain.logits([plain.preprocess(image)]) / 3.0, 1).max().item()
    assert soft.confidence == pytest.approx(expected, abs=1e-5) and soft.confidence < raw
    assert not soft.unknown
    cal.set_threshold(run, 0.999, target=0.99)
    sure = Predictor(run, device="cpu").predict(image)
    assert sure.unknown and sure.labels  # unknown, with its labels still there
    assert load_checkpoint(checkpoint)["calibration"]["target_accuracy"] == 0.99


def test_calibrate_run_on_demand(run):
    result = cal.calibrate_run(run, target=0.9, device="cpu")
    assert result.split == "val" and result.samples == 6
    record = load_checkpoint(run / "checkpoints" / "best.pt")["calibration"]
    assert record["target_accuracy"] == 0.9
    assert record["threshold"] == pytest.approx(result.threshold)
    with pytest.raises(cal.CalibrationError, match="target accuracy"):
        cal.calibrate_run(run, target=1.5)


def test_a_bad_calibration_record_is_refused_naming_the_file(run):
    checkpoint = run / "checkpoints" / "best.pt"
    payload = load_checkpoint(checkpoint)
    payload["calibration"] = {"temperature": float("nan")}
    save_checkpoint(checkpoint, payload)
    with pytest.raises(CheckpointError, match="best.pt.*temperature"):
        Predictor(run, device="cpu")
    payload["calibration"] = {"temperature": 1.0, "threshold": 2}
    save_checkpoint(checkpoint, payload)
    with pytest.raises(CheckpointError, match="threshold"):
        Predictor(run, device="cpu")


def test_figures_draw_the_report_and_accept_empty_input():
    from studio.calibration_figures import coverage_figure, reliability_figure

    logits, labels = overconfident(500)
    result = cal.calibrate_logits(logits, labels, target=0.9)
    fig = reliability_figure(result.bins_before, result.bins_after)
    assert [t.name for t in fig.data] == ["before scaling", "after scaling", "calibrated"]
    fig = coverage_figure(result.curve, result.threshold, 0.9)
    marked = fig.data[1]
    assert marked.y[0] >= 0.9  # the chosen threshold's point reaches the target
    assert cal.threshold_on_curve(result.curve, 0.9, result.samples) == pytest.approx(
        result.threshold, abs=0.02
    )
    assert len(reliability_figure([], []).data) == 3
    assert len(coverage_figure({}, 0.5, 0.9).data) == 1


def test_a_split_without_mistakes_keeps_the_trained_confidence():
    """With every validation image right, the NLL alone would push T to its lower bound and the
    model would claim near-certainty; the temperature stays 1 instead."""
    import torch

    from modelkit.evaluation.calibration import fit_temperature

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.5], [3.0, 1.0]])
    assert fit_temperature(logits, torch.tensor([0, 1, 0])) == 1.0
    assert fit_temperature(logits, torch.tensor([0, 0, 0])) != 1.0  # one mistake: fitted


def test_the_end_of_a_run_passes_over_each_split_once(make_config, monkeypatch):
    """The final evaluation and calibration read the same logits of the best weights: each
    evaluation split is run through the model once at the end, not once for each."""
    from modelkit.training.loop import Trainer

    trainer = Trainer(make_config(epochs=1, test_ratio=0.2))
    seen: list[str] = []
    predict = trainer.predict

    def counted(split: str, tta: bool = True, **kwargs):
        if tta:  # the end of the run (each epoch's validation looks at one view)
            seen.append(split)
        return predict(split, tta, **kwargs)

    monkeypatch.setattr(trainer, "predict", counted)
    result = trainer.fit()
    assert cal.load_report(result.run_dir) is not None  # calibrated
    assert sorted(seen) == ["test", "val"]
