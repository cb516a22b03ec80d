"""An ensemble run: 2-3 finished runs averaged into one model that predicts, explains,
evaluates, calibrates, exports, serves and reports like any run; runs that do not fit together
are refused, naming the run."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import fast_config, png_bytes, write_dataset

from modelkit.cli.main import main
from modelkit.data.augment import eval_batch
from modelkit.evaluation.calibration import calibrate_run
from modelkit.evaluation.embeddings import compute_embeddings
from modelkit.evaluation.evaluate import EvaluationError
from modelkit.evaluation.metrics import load_evaluation
from modelkit.models.checkpoint import load_checkpoint, save_checkpoint
from modelkit.runs.ensemble import EnsembleError, build_ensemble_run
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.store import load_run
from modelkit.serving.export import export_run
from modelkit.serving.http_client import predict_files
from modelkit.serving.predictor import Predictor
from modelkit.serving.server import PredictionService, create_app, running
from modelkit.training.loop import Trainer

IMAGENET = (torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three tiny runs on one data set and split (seed 0): ResNet-18 at 32 px, EfficientNet-Lite0
    at 48 px (another size and normalisation), a small ResNet at 32 px; and the ensemble of all
    three. Tests that write into a run copy it first."""
    base = tmp_path_factory.mktemp("ensemble")
    data = write_dataset(base / "data", num_classes=3, per_class=10, seed=1)
    out = {"data": data, "runs_dir": base / "runs"}
    for key, settings in {
        "resnet": dict(arch="resnet18"),
        "lite": dict(arch="efficientnet_lite0", image_size=48),
        "small": dict(arch="smallresnet"),
    }.items():
        config = fast_config(data, out["runs_dir"], run_name=key, tensorboard=False, **settings)
        result = Trainer(config).fit()
        assert result.state == "finished"
        out[key] = result.run_dir
    out["ensemble"] = build_ensemble_run(
        [out["resnet"], out["lite"], out["small"]], out["runs_dir"], "trio", device="cpu"
    )
    return out


def squares(predictor: Predictor, paths: list[str]) -> list[np.ndarray]:
    return [predictor.preprocess(p) for p in paths]


def val_paths(run: Path) -> list[str]:
    return [p for p, _ in RunFolder(run).read_splits()["val"]]


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def test_the_ensemble_is_a_run_that_says_what_it_is_made_of(runs):
    ens = runs["ensemble"]
    payload = torch.load(RunFolder(ens).best, weights_only=True)  # plain tensors and values
    assert payload["arch"] == "ensemble"
    assert [m["run"] for m in payload["members"]] == [
        runs[k].name for k in ("resnet", "lite", "small")
    ]
    assert [m["preprocess"]["image_size"] for m in payload["members"]] == [32, 48, 32]
    assert payload["preprocess"]["image_size"] == 48  # the largest member's input
    config = read_json(RunFolder(ens).config)
    assert config["arch"] == "ensemble"
    assert config["ensemble_of"] == [m["run"] for m in payload["members"]]
    info = load_run(ens)
    assert info.state == "finished" and info.arch == "ensemble"
    assert info.classes == read_json(RunFolder(runs["resnet"]).classes)
    assert RunFolder(ens).read_splits() == RunFolder(runs["resnet"]).read_splits()


def test_logits_are_the_mean_of_the_members_logits(runs):
    """Members at the ensemble's size and normalisation see its input as is; the 32 px ones see
    it resized (antialiased bilinear) and normalised as they were trained."""
    ens = Predictor(runs["ensemble"], device="cpu")
    members = [Predictor(runs[k], device="cpu") for k in ("resnet", "lite", "small")]
    paths = val_paths(runs["ensemble"])
    batch = torch.from_numpy(np.stack(squares(ens, paths)))
    x = eval_batch(batch, 48, channels_last=False, norm=ens.norm)
    pixels = x * 0.5 + 0.5  # Lite0's normalisation, the ensemble's input
    small = F.interpolate(pixels, size=(32, 32), mode="bilinear", antialias=True)
    small = (small - IMAGENET[0][:, None, None]) / IMAGENET[1][:, None, None]
    with torch.no_grad():
        expected = (members[0].model(small) + members[1].model(x) + members[2].model(small)) / 3
    got = ens.logits(squares(ens, paths))
    assert torch.allclose(got, expected, atol=1e-4)
    # the same-size member gets exactly what its own Predictor computes for these files
    with torch.no_grad():
        lite_alone = members[1].logits(squares(members[1], paths))
    assert torch.allclose(members[1].model(x).detach(), lite_alone, atol=1e-4)


def test_two_members_of_one_size_average_their_own_predictors(runs, tmp_path):
    pair = build_ensemble_run([runs["resnet"], runs["small"]], tmp_path, "pair", device="cpu")
    ens = Predictor(pair, device="cpu")
    a, b = Predictor(runs["resnet"], device="cpu"), Predictor(runs["small"], device="cpu")
    paths = val_paths(pair)
    mean = (a.logits(squares(a, paths)) + b.logits(squares(b, paths))) / 2
    assert torch.allclose(ens.logits(squares(ens, paths)), mean, atol=1e-5)
    assert [p.label for p in ens.predict_many(paths)] == [a.classes[int(i)] for i in mean.argmax(1)]


def test_predictor_answers_for_files_with_top_k_and_grad_cam(runs, tmp_path):
    predictor = Predictor(runs["ensemble"], device="cpu")
    image = tmp_path / "red.png"
    image.write_bytes(png_bytes((210, 40, 40), (40, 48)))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    one = predictor.predict(image, top_k=2)
    assert len(one.labels) == 2 and set(one.labels) <= set(predictor.classes)
    assert one.probabilities[0] >= one.probabilities[1]
    many = predictor.predict_many([image, broken, image], top_k=3)
    assert [p.error == "" for p in many] == [True, False, True]
    assert "broken.png" in many[1].error
    explained = predictor.predict(image, explain=True)
    assert explained.cam.shape == (48, 48)  # the ensemble's input: the crop the model saw
    assert explained.view.shape == (48, 48, 3)
    assert 0.0 <= explained.cam.min() and explained.cam.max() == pytest.approx(1.0)
    target = predictor.predict(image, explain=True, target="blue")
    assert target.cam_label == "blue" and target.cam.shape == (48, 48)


def test_evaluation_is_saved_and_is_the_runs_best(runs, capsys):
    ens = runs["ensemble"]
    saved = load_evaluation(ens, "val")
    assert saved is not None and sum(map(sum, saved.confusion_matrix)) == 6
    assert load_run(ens).best_val_acc == pytest.approx(saved.accuracy)
    assert main(["evaluate", str(ens), "--device", "cpu"]) == 0
    assert f"{saved.accuracy:.4f}" in capsys.readouterr().out


def test_exports_agree_with_pytorch(runs, tmp_path):
    ens = copy_run(runs["ensemble"], tmp_path)
    for fmt in ("onnx", "torchscript"):
        result = export_run(ens, fmt, timing=False)
        summary = result.parity["summary"]
        assert summary["top1_agreement"] == 1.0 and summary["accuracy_change"] == 0.0, fmt
        assert result.max_abs_diff < 1e-3, fmt
        assert result.path.is_file()
    card = read_json(RunFolder(ens).path / "export" / "model_card.json")
    assert card["arch"] == "ensemble" and card["input"]["image_size"] == 48


def test_calibration_fits_the_ensembles_logits(runs, tmp_path):
    ens = copy_run(runs["ensemble"], tmp_path)
    cal = calibrate_run(ens, device="cpu")
    assert cal.samples == 6 and cal.temperature > 0
    assert Predictor(ens, device="cpu").temperature == pytest.approx(cal.temperature)
    assert load_checkpoint(RunFolder(ens).best)["arch"] == "ensemble"  # still loads safely


def test_serving_answers_like_the_predictor(runs):
    predictor = Predictor(runs["ensemble"], device="cpu")
    service = PredictionService(predictor, max_batch=4, max_wait_s=0.05, top_k=2)
    image = png_bytes((40, 190, 60), (40, 48))
    with running(create_app(service)) as url:
        status, answer = predict_files(url, [("g.png", image)], top_k=3)
    assert status == 200
    assert answer["predictions"][0]["labels"] == predictor.predict(io.BytesIO(image), 3).labels


def test_features_are_refused_naming_the_member_runs(runs):
    with pytest.raises(EvaluationError, match=runs["lite"].name):
        compute_embeddings(runs["ensemble"], device="cpu")


def test_runs_with_other_classes_or_order_are_refused_naming_the_run(runs, tmp_path):
    other = copy_run(runs["small"], tmp_path / "other")
    payload = load_checkpoint(RunFolder(other).best)
    payload["classes"] = list(reversed(payload["classes"]))
    save_checkpoint(RunFolder(other).best, payload)
    out = tmp_path / "runs"
    with pytest.raises(EnsembleError, match=rf"run {other.name} has .*same classes in the same"):
        build_ensemble_run([runs["resnet"], other], out, "bad")
    payload["classes"] = ["cat", "dog", "fox"]
    save_checkpoint(RunFolder(other).best, payload)
    with pytest.raises(EnsembleError, match=rf"run {other.name} has other classes"):
        build_ensemble_run([runs["resnet"], other], out, "bad")
    assert not out.exists()  # refused before anything was written


def test_a_member_that_trained_on_the_held_out_images_is_refused(runs, tmp_path):
    other = copy_run(runs["small"], tmp_path / "other")
    splits = RunFolder(other).read_splits()
    splits["train"] += splits.pop("val")
    RunFolder(other).splits.write_text(json.dumps(splits))
    with pytest.raises(EnsembleError, match=rf"run {other.name} trained on 6 of the images"):
        build_ensemble_run([runs["resnet"], other], tmp_path / "runs", "leak")


def test_wrong_counts_and_ensembles_of_ensembles_are_refused(runs, tmp_path):
    with pytest.raises(EnsembleError, match="2 or 3 runs, not 1"):
        build_ensemble_run([runs["resnet"]], tmp_path)
    with pytest.raises(EnsembleError, match="named twice"):
        build_ensemble_run([runs["resnet"], runs["resnet"]], tmp_path)
    with pytest.raises(EnsembleError, match="is an ensemble already"):
        build_ensemble_run([runs["ensemble"], runs["resnet"]], tmp_path)
    died = copy_run(runs["small"], tmp_path / "died")
    status = read_json(RunFolder(died).status)
    RunFolder(died).status.write_text(json.dumps({**status, "state": "running"}))  # no process
    with pytest.raises(EnsembleError, match=rf"run {died.name} is interrupted"):
        build_ensemble_run([runs["resnet"], died], tmp_path)


def test_the_command_makes_predicts_and_reports_an_ensemble(runs, tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(
        ["ensemble", str(runs["resnet"]), str(runs["lite"]), "--name", "duo", "--runs-dir",
         str(out), "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    run = Path(printed[-1])
    assert run.parent == out and "duo" in run.name and printed[0].startswith("validation accuracy")
    table = tmp_path / "predictions.csv"
    assert main(["predict", str(run), str(runs["data"]), "--csv", str(table)]) == 0
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30
    assert main(["report", str(run)]) == 0
    html = RunFolder(run).report.read_text()
    assert "ensemble" in html and runs["lite"].name in html
    assert main(["ensemble", str(runs["resnet"])]) == 1
    assert "2 or 3 runs" in capsys.readouterr().err
