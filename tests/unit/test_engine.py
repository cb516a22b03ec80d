"""Trainer: learning, metrics, stopping, checkpoints, exact resume, early stopping, failures."""

from __future__ import annotations

import copy
import json
import threading

import pytest
import torch

from modelkit.data.scan import DatasetError
from modelkit.events import (
    BatchEnd,
    CacheProgress,
    CheckpointSaved,
    EpochEnd,
    Failed,
    Finished,
    Message,
    RunStarted,
    Stopped,
)
from modelkit.models import registry
from modelkit.models.checkpoint import load_checkpoint
from modelkit.runs.store import read_json, read_metrics
from modelkit.training import inputs
from modelkit.training.loop import Trainer, TrainingError, TrainResult


class Recorder:
    """Collects events; ``stop_when(predicate)`` sets the stop event when an event matches."""

    def __init__(self, stop_when=None):
        self.events = []
        self.stop = threading.Event()
        self.stop_when = stop_when

    def __call__(self, event):
        self.events.append(event)
        if self.stop_when is not None and self.stop_when(event):
            self.stop.set()

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    def names(self):
        return [type(e).__name__ for e in self.events]


def train(config, stop_when=None) -> tuple[TrainResult, Recorder]:
    rec = Recorder(stop_when)
    result = Trainer(config, [rec]).fit(rec.stop)
    return result, rec


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, helpers):
    """One uninterrupted 3-epoch run (cosine, sgd) that several tests read."""
    base = tmp_path_factory.mktemp("baseline")
    data = helpers.write_dataset(base / "data")
    cfg = helpers.fast_config(data, base / "runs", epochs=3)
    result, rec = train(cfg)
    return cfg, result, rec


def test_training_lowers_the_loss(baseline):
    _, result, rec = baseline
    assert result.state == "finished"
    rows = read_metrics(result.run_dir)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < 0.5 * rows[0]["train_loss"]
    batch_losses = [e.loss for e in rec.of(BatchEnd)]
    assert sum(batch_losses[-3:]) < sum(batch_losses[:3])
    assert result.last["epoch"] == 3 and result.best["epoch"] in (1, 2, 3)


def test_metrics_rows(baseline):
    _, result, _ = baseline
    rows = read_metrics(result.run_dir)
    keys = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"}
    keys |= {"epoch_seconds", "images_per_second"}
    assert all(set(r) == keys for r in rows), rows[0].keys()  # 3 classes: no top-5
    assert all(r["images_per_second"] > 0 and r["epoch_seconds"] > 0 for r in rows)
    assert all(0 <= r["train_acc"] <= 1 and 0 <= r["val_acc"] <= 1 for r in rows)
    assert rows[0]["lr"] == pytest.approx(0.01) and rows[1]["lr"] < rows[0]["lr"]  # cosine


def test_events_in_order(baseline):
    _, result, rec = baseline
    names = rec.names()
    assert names[0] == "RunStarted" and names[-1] == "Finished"
    started = rec.of(RunStarted)[0]
    assert started.run_dir == str(result.run_dir) and started.start_epoch == 0
    assert started.num_train == 24 and started.num_val == 6 and started.steps_per_epoch == 3
    assert started.device == "cpu" and started.precision == "fp32"
    batches = rec.of(BatchEnd)
    assert [(b.epoch, b.batch) for b in batches] == [(e, b) for e in range(3) for b in range(3)]
    assert [b.global_step for b in batches] == list(range(1, 10))
    assert [e.epoch for e in rec.of(EpochEnd)] == [0, 1, 2]
    assert rec.of(CacheProgress)[-1].done == rec.of(CacheProgress)[-1].total == 30
    saved = [s.kind for s in rec.of(CheckpointSaved)]
    assert saved.count("last") == 3 and "best" in saved
    assert rec.of(Finished)[0].reason == "completed"
    assert names.index("CacheProgress") < names.index("BatchEnd")


def test_the_run_folder_is_complete(baseline):
    cfg, result, _ = baseline
    run = result.run_dir
    for name in ("config.json", "classes.json", "splits.json", "status.json", "log.txt"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text()) == cfg.to_dict()
    assert read_json(run / "classes.json") == ["blue", "green", "red"]
    splits = read_json(run / "splits.json")
    assert {k: len(v) for k, v in splits.items()} == {"train": 24, "val": 6}
    status = read_json(run / "status.json")
    assert status["state"] == "finished" and status["epoch"] == 3
    assert status["best"]["epoch"] == result.best["epoch"]
    assert (run / "evaluation" / "val.json").is_file()
    assert (run / "evaluation" / "predictions_val.csv").is_file()


def test_checkpoints_load_weights_only_with_everything_needed(baseline):
    _, result, _ = baseline
    folder = result.run_dir / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best.pt", "last.pt"]
    last = torch.load(folder / "last.pt", weights_only=True)
    best = torch.load(folder / "best.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "epoch", "rng", "config", "classes"):
        assert key in last, key
    assert {"torch", "data"} <= set(last["rng"])
    assert last["epoch"] == 3 and best["epoch"] == result.best["epoch"]
    for ck in (last, best):
        assert ck["format"] == "modelkit" and ck["arch"] == "resnet18"
        assert ck["classes"] == ["blue", "green", "red"]
        assert ck["preprocess"] == {
            "image_size": 32,
            "resize_size": 37,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "padding": "symmetric",  # torchvision's; TF-ported weights record "same"
            "tta": "none",  # test-time augmentation, which the Predictor repeats
        }
        assert ck["config"]["image_size"] == 32
    assert "optimizer" not in best  # best.pt is for inference: weights and metadata only
    assert {"lr", "initial_lr"} <= set(last["optimizer"]["param_groups"][0])
    assert last["scheduler"]["last_epoch"] == 3
    model = registry.build_model("resnet18", 3)
    model.load_state_dict(last["model"])


def test_top5_with_five_classes_and_test_split(make_dataset, make_config):
    data = make_dataset("five", num_classes=5, per_class=6)
    result, rec = train(make_config(data_dir=str(data), epochs=1, test_ratio=0.2, val_ratio=0.2))
    (row,) = read_metrics(result.run_dir)
    assert 0 <= row["val_top5"] <= 1 and row["val_top5"] >= row["val_acc"]
    assert (result.run_dir / "evaluation" / "test.json").is_file()
    assert set(read_json(result.run_dir / "splits.json")) == {"train", "val", "test"}


def test_stop_mid_epoch_before_the_next_batch(make_config):
    def second_batch(e):
        return isinstance(e, BatchEnd) and e.batch == 1

    result, rec = train(make_config(epochs=3), stop_when=second_batch)
    assert result.state == "stopped"
    names = rec.names()
    i = next(k for k, e in enumerate(rec.events) if second_batch(e))
    assert "BatchEnd" not in names[i + 1 :]
    assert names[-1] == "Stopped"
    stopped = rec.of(Stopped)[0]
    assert (stopped.epoch, stopped.batch) == (0, 2)
    assert not rec.of(EpochEnd) and not rec.of(Finished)
    assert read_json(result.run_dir / "status.json")["state"] == "stopped"


def test_stop_before_training_starts(make_config):
    stop = threading.Event()
    stop.set()
    rec = Recorder()
    result = Trainer(make_config(), [rec]).fit(stop)
    assert result.state == "stopped" and not rec.of(BatchEnd)
    assert read_json(result.run_dir / "status.json")["state"] == "stopped"


def run_a_and_b(cfg, stop_when, baseline=None):
    """A: uninterrupted (or the baseline run). B: stopped by ``stop_when``, then resumed."""
    result_a = baseline[1] if baseline else train(cfg)[0]
    result_b, rec_b = train(cfg, stop_when=stop_when)
    assert result_b.state == "stopped"
    rec_resume = Recorder()
    resumed = Trainer.resume(result_b.run_dir, [rec_resume]).fit()
    assert resumed.state == "finished" and resumed.run_dir == result_b.run_dir
    return result_a, resumed, rec_b, rec_resume


def after_first_epoch(e):
    return isinstance(e, EpochEnd) and e.epoch == 0


def first_batch_of_second_epoch(e):
    return isinstance(e, BatchEnd) and e.epoch == 1 and e.batch == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings, stop_when",
    [
        (None, after_first_epoch),  # the baseline: cosine, sgd
        (dict(scheduler="onecycle", optimizer="adamw", lr=0.003), first_batch_of_second_epoch),
        (
            dict(
                scheduler="plateau",
                optimizer="adam",
                lr=0.001,
                plateau_patience=0,
                monitor="val_acc",  # ties are common: the plateau state decides the lr
                head="mlp",
                head_hidden=[32],
                head_dropout=0.3,
                brightness=0.2,
                rotation=10.0,
            ),
            after_first_epoch,
        ),
    ],
    ids=["cosine-sgd", "onecycle-adamw-mid-epoch", "plateau-adam-dropout"],
)
def test_exact_resume(make_config, baseline, settings, stop_when):
    if settings is None:
        cfg = baseline[0]
        result_a, resumed, rec_b, rec_resume = run_a_and_b(cfg, stop_when, baseline)
    else:
        cfg = make_config(epochs=3, **settings)
        result_a, resumed, rec_b, rec_resume = run_a_and_b(cfg, stop_when)
    a = load_checkpoint(result_a.run_dir / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), f"{k} differs after resume"
    for group_a, group_b in zip(a["optimizer"]["param_groups"], b["optimizer"]["param_groups"]):
        assert group_a["lr"] == group_b["lr"]

    # curves: the resumed run's metrics.jsonl is A's, timing aside
    def numbers(run_dir):
        skip = {"epoch_seconds", "images_per_second"}
        return [{k: v for k, v in r.items() if k not in skip} for r in read_metrics(run_dir)]

    assert numbers(resumed.run_dir) == numbers(result_a.run_dir)

    started = rec_resume.of(RunStarted)[0]
    assert started.start_epoch == 1
    assert rec_resume.of(BatchEnd)[0].epoch == 1
    assert rec_resume.of(BatchEnd)[0].global_step == 4
    assert any("resumed from last.pt after epoch 1" in m.text for m in rec_resume.of(Message))
    status = read_json(resumed.run_dir / "status.json")
    assert status["state"] == "finished" and status["resumed_at"]


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        Trainer.resume(tmp_path)


def test_early_stopping(make_config):
    # A frozen backbone at a negligible learning rate: val accuracy cannot improve.
    cfg = make_config(
        epochs=6,
        freeze_backbone=True,
        lr=1e-7,
        monitor="val_acc",
        early_stopping_patience=1,
        scheduler="none",
    )
    result, rec = train(cfg)
    assert result.state == "finished"
    assert len(rec.of(EpochEnd)) == 2
    assert rec.of(Finished)[0].reason == "early_stopping"
    assert any("early stopping" in m.text for m in rec.of(Message))
    assert read_json(result.run_dir / "status.json")["reason"] == "early_stopping"


def test_without_a_val_split_train_loss_is_watched(make_config):
    # monitor=val_acc cannot be had without val: best, early stopping and the plateau schedule
    # all watch train_loss instead, and a falling train loss is an improvement for each of them.
    cfg = make_config(
        epochs=3, val_ratio=0.0, scheduler="plateau", plateau_patience=0, monitor="val_acc"
    )
    result, rec = train(cfg)
    rows = read_metrics(result.run_dir)
    assert "val_loss" not in rows[0] and not (result.run_dir / "evaluation").exists()
    losses = [r["train_loss"] for r in rows]
    assert losses[1] < losses[0]  # so the lr must not drop after epoch 2
    best, lr, expected_best, expected_lr = float("inf"), 0.01, [], []
    for loss in losses:
        expected_lr.append(lr)
        expected_best.append(loss < best)
        best, lr = (loss, lr) if loss < best else (best, lr * cfg.gamma)
    assert [r["lr"] for r in rows] == pytest.approx(expected_lr)
    assert [e.is_best for e in rec.of(EpochEnd)] == expected_best
    assert result.best["train_loss"] == min(losses)


def test_frozen_backbone_keeps_weights_and_statistics(make_config):
    result, _ = train(make_config(epochs=1, freeze_backbone=True, lr=0.05))
    first = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]
    torch.manual_seed(0)
    initial = registry.build_model("resnet18", 3).state_dict()
    for k, v in first.items():
        if k.startswith("fc."):
            assert not torch.equal(v, initial[k]), f"head {k} did not train"
        else:
            assert torch.equal(v, initial[k]), f"backbone {k} changed"


@pytest.mark.parametrize(
    "settings",
    [
        dict(optimizer="sgd", scheduler="none", channels_last=False),
        dict(optimizer="adam", scheduler="step", step_size=1, lr=0.001, grad_clip=1.0),
        dict(optimizer="adamw", scheduler="cosine", lr=0.001, label_smoothing=0.1),
        dict(optimizer="sgd", scheduler="onecycle", backbone_lr=0.001, head="mlp"),
        dict(optimizer="adam", scheduler="plateau", lr=0.001, monitor="val_acc"),
        dict(optimizer="sgd", scheduler="cosine", precision="bf16", vflip=True, shear=5.0),
    ],
    ids=lambda s: "-".join(str(v) for v in s.values()),
)
def test_optimizers_schedulers_and_options_run_an_epoch(make_dataset, make_config, settings):
    small = make_dataset("small", per_class=5)  # 12 train images: two batches
    result, rec = train(make_config(data_dir=str(small), epochs=1, **settings))
    assert result.state == "finished"
    (row,) = read_metrics(result.run_dir)
    assert torch.isfinite(torch.tensor([row["train_loss"], row["val_loss"]])).all()
    assert row["lr"] > 0
    assert all(e.lr > 0 for e in rec.of(BatchEnd))


def test_corrupt_image_is_skipped_with_a_warning(image_dataset, make_config):
    bad = image_dataset / "red" / "red_99.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result, rec = train(make_config(epochs=1, run_name="with a bad file!"))
    assert result.state == "finished"
    assert "-with-a-bad-file-" in result.run_dir.name
    warnings = [m for m in rec.of(Message) if m.level == "warning"]
    assert len(warnings) == 1 and str(bad) in warnings[0].text
    assert "warning" in (result.run_dir / "log.txt").read_text()
    splits = read_json(result.run_dir / "splits.json")
    assert str(bad) in [p for s in splits.values() for p, _ in s]
    predicted = (result.run_dir / "evaluation" / "predictions_val.csv").read_text()
    assert str(bad) not in predicted


def test_no_readable_training_image_fails_the_run(make_dataset, make_config):
    data = make_dataset("broken", per_class=3)
    for path in data.rglob("*.png"):
        path.write_bytes(b"not a png")
    rec = Recorder()
    trainer = Trainer(make_config(data_dir=str(data)), [rec])
    with pytest.raises(TrainingError, match="no readable training images"):
        trainer.fit()
    assert len([m for m in rec.of(Message) if m.level == "warning"]) == 9
    assert read_json(trainer.run_dir / "status.json")["state"] == "failed"


def test_failure_emits_failed_and_marks_the_run(make_config, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(inputs, "train_batch", out_of_memory)
    rec = Recorder()
    trainer = Trainer(make_config(), [rec])
    with pytest.raises(TrainingError, match="smaller batch size") as info:
        trainer.fit()
    (failed,) = rec.of(Failed)
    assert failed.error == str(info.value) and "out_of_memory" in failed.traceback
    assert rec.names()[-1] == "Failed"
    status = read_json(trainer.run_dir / "status.json")
    assert status["state"] == "failed" and "smaller batch size" in status["error"]


def test_nan_loss_fails_with_advice(make_config, monkeypatch):
    real = inputs.train_batch

    def poisoned(*args, **kwargs):
        return real(*args, **kwargs) * float("nan")

    monkeypatch.setattr(inputs, "train_batch", poisoned)
    rec = Recorder()
    with pytest.raises(TrainingError, match="lower the learning rate") as info:
        Trainer(make_config(), [rec]).fit()
    assert str(info.value).startswith("the loss became nan in epoch 1")
    assert rec.of(Failed)[0].error == str(info.value)


def test_a_failing_listener_fails_the_run_but_still_reports(make_config):
    def full_disk(event):
        if isinstance(event, EpochEnd):
            raise OSError(28, "No space left on device", "metrics.jsonl")

    rec = Recorder()
    trainer = Trainer(make_config(epochs=1), [full_disk, rec])
    with pytest.raises(TrainingError, match="disk is full"):
        trainer.fit()
    assert rec.of(Failed) and read_json(trainer.run_dir / "status.json")["state"] == "failed"


def test_bad_data_fails_before_a_run_folder_exists(tmp_path, make_config):
    with pytest.raises(DatasetError, match="not found"):
        Trainer(make_config(data_dir=str(tmp_path / "nope"))).fit()
    one_class = tmp_path / "one" / "only"
    one_class.mkdir(parents=True)
    (one_class / "a.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="at least 2 classes"):
        Trainer(make_config(data_dir=str(tmp_path / "one"))).fit()
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_the_update_is_fused_on_a_cpu_and_matches_the_per_tensor_loop(name):
    """Fused optimizer kernels on a CPU (torch uses its slower per-tensor loop there unless
    asked): the same update as the loop, so only the speed changes."""
    from modelkit.models.registry import build_model
    from modelkit.training.optim import create_optimizer

    torch.manual_seed(0)
    fused_model = build_model("smallresnet", 2)
    loop_model = copy.deepcopy(fused_model)
    fused = create_optimizer(fused_model, "smallresnet", name, lr=0.1, weight_decay=0.01)
    assert fused.defaults["fused"] is True
    twin = dict(zip(fused_model.parameters(), loop_model.parameters()))
    groups = [
        {**{k: v for k, v in g.items() if k not in ("params", "fused", "foreach")},
         "params": [twin[p] for p in g["params"]]}
        for g in fused.param_groups
    ]  # fmt: skip
    loop = type(fused)(groups, lr=0.1, foreach=False)
    start = [p.detach().clone() for p in loop_model.parameters()]
    x = torch.randn(4, 3, 16, 16)
    for _ in range(3):
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    pairs = zip(fused_model.parameters(), loop_model.parameters(), start)
    for a, b, before in ((a.detach(), b.detach(), s) for a, b, s in pairs):
        # the same update to rounding (Adam divides by sqrt(v) + eps: a few elements whose
        # gradients are ~0 round apart); a wrong rate or decay would be off by percents
        assert float((a - b).norm()) <= 1e-3 * float((b - before).norm()) + 1e-7
