"""ONNX int8 export: quantised on the run's images, proven against PyTorch, refused when it loses
accuracy (with the table, and no model file left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import fast_config, write_dataset

pytest.importorskip("onnxruntime")

from modelkit.cli.main import main  # noqa: E402
from modelkit.serving import export_inputs  # noqa: E402
from modelkit.serving.export import ExportRefused, export_run  # noqa: E402
from modelkit.serving.onnx_backend import OnnxPredictor, make_predictor  # noqa: E402
from modelkit.serving.predictor import Predictor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run that has learned its three classes (val accuracy 100%), so a damaged int8 model
    shows as lost accuracy; the session's 2-epoch run is too close to chance to tell."""
    from modelkit.training.loop import Trainer

    base = tmp_path_factory.mktemp("int8")
    data = write_dataset(base / "data", num_classes=3, per_class=10, seed=1)
    result = Trainer(fast_config(data, base / "runs", epochs=6)).fit()
    status = json.loads((result.run_dir / "status.json").read_text())
    assert status["best"]["val_acc"] == 1.0
    return result.run_dir


@pytest.fixture(scope="module")
def int8(run):
    return export_run(run, "onnx-int8", timing=False)


def _card(run: Path) -> dict:
    return json.loads((run / "export" / "model_card.json").read_text())


def _val_images(run: Path) -> list[str]:
    return [p for p, _ in json.loads((run / "splits.json").read_text())["val"]]


def test_int8_file_is_smaller_and_its_card_holds_the_parity_table(int8, run):
    assert int8.path == run / "export" / "model.int8.onnx" and int8.path.is_file()
    fp32 = export_run(run, "onnx", timing=False)
    assert int8.path.stat().st_size < fp32.path.stat().st_size / 2  # int8 weights
    entry = _card(run)["exports"]["onnx-int8"]
    summary = entry["parity"]["summary"]
    assert summary["verified_on"] == f"{len(_val_images(run))} val images"
    assert 0.0 <= summary["top1_agreement"] <= 1.0
    assert summary["accuracy_change"] == summary["accuracy_export"] - summary["accuracy_pytorch"]
    classes = [r["class"] for r in entry["parity"]["per_class"]]
    assert classes == [c for c in _card(run)["classes"] if c in classes] and classes
    assert set(entry["parity"]["per_class"][0]) >= {
        "class",
        "accuracy_pytorch",
        "accuracy_export",
        "change",
    }
    assert "onnx" in _card(run)["exports"]  # the other format's entry is kept


def test_the_calibrated_head_is_reported_float_with_its_reason(int8, run):
    quant = _card(run)["exports"]["onnx-int8"]["quantization"]
    assert quant["weights"] == "int8, per output channel"
    assert quant["calibrated_on"].endswith("train images")
    floats = {f["op_type"]: f["why"] for f in quant["float_nodes"]}
    assert "Softmax" in floats and "probabilities" in floats["Softmax"]


def _bad_calibration(monkeypatch):
    """Calibrate on near-constant images: every int8 range is fitted far too narrow, so real
    images saturate the model and it answers nonsense."""
    real = export_inputs.calibration_inputs

    def faint(loaded, count):
        x, _ = real(loaded, count)
        return x * 1e-3, "faint images"

    monkeypatch.setattr(export_inputs, "calibration_inputs", faint)


def test_an_int8_export_that_loses_accuracy_is_refused_with_the_table(run, tmp_path, monkeypatch):
    _bad_calibration(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(ExportRefused) as refused:
        export_run(run, "onnx-int8", out, timing=False)
    message = str(refused.value)
    assert "more than the 1 allowed" in message and "top-1 agreement" in message
    assert refused.value.parity["summary"]["accuracy_change"] < -0.01
    assert not (out / "model.int8.onnx").exists()
    assert [p.name for p in out.iterdir()] == []  # no staging folder or card left either

    done = export_run(run, "onnx-int8", out, max_drop=100, timing=False)  # the limit is theirs
    assert done.path.is_file()


def test_cli_refusal_prints_the_table_then_one_error_line(run, tmp_path, monkeypatch, capsys):
    _bad_calibration(monkeypatch)
    out = tmp_path / "cli"
    args = ["export", str(run), "--format", "onnx-int8", "--out", str(out), "--no-timing"]
    assert main([*args, "--max-drop", "1.0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: onnx-int8 export refused: accuracy fell")
    assert any("top-1 agreement" in line for line in err[:-1])
    assert not (out / "model.int8.onnx").exists()
    assert main([*args, "--max-drop", "-1"]) == 2


def test_onnxruntime_int8_backend_predicts_like_pytorch(int8, run):
    images = _val_images(run)
    predictor = make_predictor(run, "onnxruntime-int8")
    assert isinstance(predictor, OnnxPredictor) and predictor.backend == "onnxruntime-int8"
    assert predictor.model_path == int8.path
    reference = Predictor(run, device="cpu", precision="fp32").predict_many(images)
    got = predictor.predict_many([*images, "/no/such.png"])
    assert got[-1].error and not got[-1].labels
    agree = sum(a.label == b.label for a, b in zip(reference, got))
    assert agree == len(images)
