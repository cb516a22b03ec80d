"""OpenVINO IR export (fp32 and int8), proven against PyTorch, and the openvino backends of
``predict`` behind the Predictor interface."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from modelkit.cli.main import main  # noqa: E402
from modelkit.serving.export import export_run  # noqa: E402
from modelkit.serving.onnx_backend import make_predictor  # noqa: E402
from modelkit.serving.openvino_backend import OpenVinoPredictor  # noqa: E402
from modelkit.serving.predictor import Predictor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def run(trained_run, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("openvino") / trained_run.name
    shutil.copytree(trained_run, dest)
    return dest


@pytest.fixture(scope="module")
def fp32(run):
    return export_run(run, "openvino", timing=False)


def _images(run: Path) -> list[str]:
    splits = json.loads((run / "splits.json").read_text())
    return [p for s in ("val", "train") for p, _ in splits[s]]


def test_ir_is_written_with_its_weights_and_matches_pytorch(fp32, run):
    assert fp32.path == run / "export" / "model.openvino.xml"
    assert [p.name for p in fp32.files] == ["model.openvino.xml", "model.openvino.bin"]
    assert all(p.is_file() for p in fp32.files)
    assert fp32.max_abs_diff < 1e-3 and fp32.sample_source == "val images"
    entry = json.loads((run / "export" / "model_card.json").read_text())["exports"]["openvino"]
    assert entry["files"] == ["model.openvino.xml", "model.openvino.bin"]
    assert entry["openvino"]["weights"] == "fp32"  # not silently halved to fp16
    summary = entry["parity"]["summary"]
    assert summary["top1_agreement"] == 1.0 and summary["accuracy_change"] == 0.0
    assert summary["file_bytes"] == sum(p.stat().st_size for p in fp32.files)
    assert not [p for p in (run / "export").iterdir() if p.name.startswith(".export-")]


def test_openvino_backend_predicts_as_pytorch_does(fp32, run):
    images = _images(run)
    predictor = make_predictor(run, "openvino")
    assert isinstance(predictor, OpenVinoPredictor) and predictor.backend == "openvino"
    reference = Predictor(run, device="cpu", precision="fp32").predict_many(images, top_k=3)
    got = predictor.predict_many([*images, "/no/such.png"], top_k=3)
    assert got[-1].error and not got[-1].labels  # a bad file gets its row, the rest go on
    for a, b in zip(reference, got):
        assert a.labels == b.labels
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("nncf") is None, reason="NNCF not installed")
def test_int8_ir_is_smaller_and_reports_what_stays_float(fp32, run, capsys):
    image = _images(run)[0]
    # predict with the int8 backend exports it first (and proves it) when it is missing
    assert main(["predict", str(run), image, "--backend", "openvino-int8", "--top-k", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{image}: ")
    card = json.loads((run / "export" / "model_card.json").read_text())
    entry = card["exports"]["openvino-int8"]
    assert entry["bytes"] < card["exports"]["openvino"]["bytes"] / 2
    assert entry["openvino"]["tool"] == "NNCF post-training quantisation (full bias correction)"
    assert entry["openvino"]["calibrated_on"].endswith("train images")
    for layer in entry["openvino"]["float_layers"]:
        assert layer["why"] and layer["count"] >= 1
    assert {r["class"] for r in entry["parity"]["per_class"]} <= set(card["classes"])


@pytest.mark.skipif(importlib.util.find_spec("nncf") is None, reason="NNCF not installed")
def test_int8_keeps_the_bias_correction_closer_to_fp32_on_held_out_images(run, tmp_path):
    from modelkit.serving import export_inputs
    from modelkit.serving.openvino_export import write_ir

    onnx = export_run(run, "onnx", tmp_path / "onnx", timing=False).path
    loaded = export_inputs.load_run_model(run)
    calibration, _ = export_inputs.calibration_inputs(loaded, 16)
    check = export_inputs.random_inputs(loaded.payload, 40, seed=3)
    info = write_ir(onnx, tmp_path / "model.xml", calibration.numpy(), check.numpy())
    scores = info["divergence_from_fp32"]
    assert set(scores) == {"full", "fast"} and all(v >= 0 for v in scores.values())
    assert info["bias_correction"] == min(scores, key=scores.get)
    assert f"({info['bias_correction']} bias correction)" in info["tool"]
    assert "40 training images calibration did not use" in info["chosen_by"]
    assert (tmp_path / "model.xml").is_file() and (tmp_path / "model.bin").is_file()


def test_openvino_missing_says_how_to_get_it(run, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name)
    )
    image = _images(run)[0]
    assert main(["predict", str(run), image, "--backend", "openvino"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: The openvino backend needs the openvino package: pip install openvino"]
