"""Export to TorchScript and ONNX, checked against PyTorch; ONNX Runtime behind the Predictor."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from modelkit.cli.main import main  # noqa: E402
from modelkit.serving.export import ExportError, export_run, load_run_model, sample_inputs  # noqa: E402
from modelkit.serving.onnx_backend import OnnxPredictor, make_predictor  # noqa: E402
from modelkit.serving.predictor import Predictor  # noqa: E402


@pytest.fixture(scope="module")
def run(trained_run, tmp_path_factory) -> Path:
    """A copy of the session's trained run (export writes into the run folder)."""
    dest = tmp_path_factory.mktemp("export") / trained_run.name
    shutil.copytree(trained_run, dest)
    return dest


@pytest.fixture(scope="module")
def exported(run) -> dict:
    return {fmt: export_run(run, fmt) for fmt in ("torchscript", "onnx")}


def _images(run: Path) -> list[str]:
    splits = json.loads((run / "splits.json").read_text())
    return [p for s in ("val", "train") for p, _ in splits.get(s, [])]


def test_each_export_is_checked_on_the_runs_val_images(exported, run):
    for fmt, result in exported.items():
        assert result.path.is_file() and result.path.parent == run / "export"
        assert result.sample_source == "val images" and result.samples >= 1
        assert result.max_abs_diff < 1e-4, (fmt, result.max_abs_diff)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_exports_load_back_with_a_free_batch_axis_and_match_pytorch(exported, run):
    import onnxruntime as ort

    loaded = load_run_model(run)
    x, _ = sample_inputs(loaded)
    x = torch.cat([x, x[:1]])  # a batch size the export never saw
    with torch.no_grad():
        expected = loaded.model(x)
    scripted = torch.jit.load(str(exported["torchscript"].path))
    with torch.no_grad():
        assert (scripted(x) - expected).abs().max() < 1e-4
    session = ort.InferenceSession(str(exported["onnx"].path), providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(None, {"images": x.numpy()})  # raw, and calibrated
    assert np.abs(logits - expected.numpy()).max() < 1e-4
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
    single = session.run(None, {"images": x[:1].numpy()})[0]
    assert single.shape == (1, len(loaded.payload["classes"]))


def test_model_card_holds_what_serving_needs(exported, run):
    card = json.loads((run / "export" / "model_card.json").read_text())
    assert card["classes"] == ["blue", "green", "red"]
    assert card["input"]["shape"] == ["batch", 3, 32, 32]
    assert len(card["input"]["mean"]) == len(card["input"]["std"]) == 3
    assert card["training_config"]["image_size"] == 32
    assert "val_acc" in card["metrics"]
    for fmt, result in exported.items():
        assert card["exports"][fmt]["max_abs_diff"] == result.max_abs_diff
        assert card["exports"][fmt]["file"] == result.path.name


def test_onnxruntime_predictor_agrees_with_pytorch(exported, run):
    images = _images(run)
    torch_preds = Predictor(run, device="cpu", precision="fp32").predict_many(images, top_k=3)
    onnx = make_predictor(run, "onnxruntime")
    assert isinstance(onnx, OnnxPredictor)
    onnx_preds = onnx.predict_many(images + ["/no/such.png"], top_k=3)
    assert onnx_preds[-1].error and not onnx_preds[-1].labels  # bad file: error, rest go on
    for a, b in zip(torch_preds, onnx_preds):
        assert a.label == b.label
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    assert onnx.predict(images[0]).label == torch_preds[0].label


def test_onnx_predictor_exports_when_the_file_is_missing(run, tmp_path):
    fresh = tmp_path / run.name
    shutil.copytree(run, fresh, ignore=shutil.ignore_patterns("export"))
    predictor = OnnxPredictor(fresh)
    assert predictor.model_path == fresh / "export" / "model.onnx"
    assert predictor.model_path.is_file()


def test_unknown_format_is_refused(run):
    with pytest.raises(ExportError, match="not one of"):
        export_run(run, "tflite")


def test_cli_export_and_predict_with_onnxruntime(run, capsys):
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("max abs diff") and out[-1].endswith("model.torchscript.pt")
    image = _images(run)[0]
    assert main(["predict", str(run), image, "--backend", "onnxruntime", "--top-k", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: ")


def test_cli_export_of_a_bad_run_exits_non_zero_with_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope"), "--format", "onnx"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_predict_with_onnxruntime_missing_says_how_to_get_it(run, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name)
    )
    image = _images(run)[0]
    assert main(["predict", str(run), image, "--backend", "onnxruntime"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: the onnxruntime backend needs the onnxruntime package: pip install onnxruntime"
    ]
