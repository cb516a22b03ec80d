"""`modelkit predict --cam`, `predict --csv` with unknown, `modelkit calibrate`, and ONNX."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from modelkit.cli.main import main
from modelkit.data.augment import eval_batch
from modelkit.evaluation import calibration as cal
from modelkit.runs.store import read_json
from modelkit.serving.onnx_backend import OnnxPredictor
from modelkit.serving.predictor import Predictor


@pytest.fixture
def run(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def val_images(run) -> list[str]:
    return [p for p, _ in read_json(run / "splits.json")["val"]][:2]


def test_predict_writes_cam_overlays_and_unknown(run, tmp_path, capsys):
    images = val_images(run)
    cal.set_threshold(run, 1.0)  # nothing is sure enough: every answer is unknown
    out_csv, cams = tmp_path / "p.csv", tmp_path / "cams"
    code = main(["predict", str(run), *images, "--csv", str(out_csv), "--cam", str(cams)])
    out, err = capsys.readouterr()
    assert code == 0 and out.count("unknown (") == 2
    written = sorted(cams.glob("*.png"))
    assert len(written) == 2 and "Grad-CAM" in err
    size = Predictor(run, device="cpu").image_size
    assert Image.open(written[0]).size == (size, size)
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["unknown"] for r in rows] == ["True", "True"]
    assert rows[0]["label_1"]  # the labels stay


def test_cam_with_onnx_is_a_usage_error(run, capsys):
    code = main(["predict", str(run), val_images(run)[0], "--backend", "onnxruntime", "--cam", "x"])
    assert code != 0 and "pytorch backend" in capsys.readouterr().err


def test_calibrate_command(run, capsys):
    code = main(["calibrate", str(run), "--target", "0.8", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "temperature" in out and "ECE" in out and "unknown below" in out
    assert cal.load_report(run)["target_accuracy"] == 0.8


def test_onnx_backend_applies_the_temperature_like_pytorch(run):
    from modelkit.models.checkpoint import load_checkpoint, save_checkpoint
    from modelkit.serving.export import export_run, onnx_session

    checkpoint = run / "checkpoints" / "best.pt"
    payload = load_checkpoint(checkpoint)
    payload["calibration"] = {"temperature": 2.5, "threshold": 0.4, "target_accuracy": 0.95}
    save_checkpoint(checkpoint, payload)
    images = val_images(run)
    torch_preds = Predictor(run, device="cpu", precision="fp32").predict_many(images)
    onnx_preds = OnnxPredictor(run).predict_many(images)
    for a, b in zip(torch_preds, onnx_preds):
        assert a.labels == b.labels and a.unknown == b.unknown
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-4)
    # the exported graph's own 'probabilities' output is calibrated, and the card says so
    result = export_run(run, "onnx")
    card = read_json(result.card)
    assert card["calibration"]["temperature"] == 2.5
    assert card["calibration"]["unknown_threshold"] == 0.4
    predictor = Predictor(run, device="cpu", precision="fp32")
    squares = [predictor.preprocess(p) for p in images]
    x = eval_batch(torch.from_numpy(np.stack(squares)), predictor.image_size, False, predictor.norm)
    probs = onnx_session(result.path).run(["probabilities"], {"images": x.numpy()})[0]
    top = probs.max(1)
    assert top == pytest.approx([p.confidence for p in torch_preds], abs=1e-4)
