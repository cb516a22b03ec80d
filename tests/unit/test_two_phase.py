"""Two-phase fine-tuning (head first, then everything at lower rates) and the recipes."""

from __future__ import annotations

import threading

import pytest
import torch

from modelkit.cli.main import main
from modelkit.config import ConfigError, TrainConfig
from modelkit.events import BatchEnd, EpochEnd, Message
from modelkit.models.checkpoint import load_checkpoint
from modelkit.models.registry import build_model
from modelkit.recipes import PRESETS, recipe
from modelkit.runs.store import read_metrics
from modelkit.training import phases
from modelkit.training.loop import Trainer
from modelkit.training.plan import RunPlan
from modelkit.training.setup import seed_everything

TWO_PHASE = dict(epochs=3, head_epochs=1, lr=0.02, finetune_lr=0.005, backbone_lr=0.001)


class Recorder:
    def __init__(self, stop_when=None):
        self.events, self.stop, self.stop_when = [], threading.Event(), stop_when

    def __call__(self, event):
        self.events.append(event)
        if self.stop_when is not None and self.stop_when(event):
            self.stop.set()


def train(cfg, stop_when=None):
    rec = Recorder(stop_when)
    return Trainer(cfg, [rec]).fit(rec.stop), rec


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, helpers):
    base = tmp_path_factory.mktemp("two_phase")
    data = helpers.write_dataset(base / "data")
    cfg = helpers.fast_config(data, base / "runs", **TWO_PHASE)
    result, rec = train(cfg)
    return cfg, result, rec


def test_phases_and_rates():
    cfg = TrainConfig(epochs=5, head_epochs=2, lr=0.1)
    plan = RunPlan.from_config(cfg)
    assert [plan.phase_of(e) for e in range(5)] == [1, 1, 2, 2, 2]
    assert phases.rates(cfg, 1) == (0.1, None)
    assert phases.rates(cfg, 2) == pytest.approx((0.01, 0.01))
    assert plan.span(1) == 2 and plan.span(2) == 3
    assert RunPlan.from_config(TrainConfig()).phase_of(3) == 0


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(epochs=3, head_epochs=3), "head_epochs: must be >= 0 and below epochs"),
        (dict(head_epochs=2, freeze_backbone=True), "turn freeze_backbone off"),
        (dict(finetune_lr=0.0), "finetune_lr: must be in"),
    ],
)
def test_invalid_two_phase_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**settings)


def test_phase_one_trains_only_the_head_then_everything_trains(uninterrupted, tmp_path):
    cfg, result, rec = uninterrupted
    assert result.state == "finished"
    rows = read_metrics(result.run_dir)
    assert [r["phase"] for r in rows] == [1, 2, 2]
    assert rows[0]["lr"] == pytest.approx(0.02) and rows[1]["lr"] == pytest.approx(0.005)
    assert any("phase 2: backbone unfrozen" in e.text for e in rec.events if isinstance(e, Message))
    # the run stopped after phase 1: the backbone (weights and BatchNorm statistics) is untouched
    stopped, _ = train(
        cfg.replace(runs_dir=str(tmp_path)), lambda e: isinstance(e, EpochEnd) and e.epoch == 0
    )
    after_phase_1 = load_checkpoint(stopped.run_dir / "checkpoints" / "last.pt")
    seed_everything(cfg.seed)
    initial = build_model(cfg.arch, 3, cfg.head, cfg.head_hidden, cfg.head_dropout).state_dict()
    for k, v in after_phase_1["model"].items():
        if k.startswith("fc."):
            assert not torch.equal(v, initial[k]), f"head {k} did not train"
        else:
            assert torch.equal(v, initial[k]), f"backbone {k} changed in phase 1"
    # ... and last.pt already holds phase 2's optimizer: head and backbone groups, own rates
    groups = {g["name"]: g["lr"] for g in after_phase_1["optimizer"]["param_groups"]}
    assert groups["head"] == pytest.approx(0.005) and groups["backbone"] == pytest.approx(0.001)
    final = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    changed = [k for k in final["model"] if k.startswith("conv1") or k.startswith("layer1")]
    assert any(not torch.equal(final["model"][k], initial[k]) for k in changed)


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_when",
    [
        lambda e: isinstance(e, EpochEnd) and e.epoch == 0,  # exactly at the phase boundary
        lambda e: isinstance(e, BatchEnd) and e.epoch == 1 and e.batch == 0,  # inside phase 2
    ],
    ids=["at-boundary", "mid-phase-2"],
)
def test_exact_resume_across_the_phase_boundary(uninterrupted, tmp_path, stop_when):
    cfg, result_a, _ = uninterrupted
    result_b, _ = train(cfg.replace(runs_dir=str(tmp_path)), stop_when)
    assert result_b.state == "stopped"
    resumed = Trainer.resume(result_b.run_dir).fit()
    assert resumed.state == "finished"
    a = load_checkpoint(result_a.run_dir / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), f"{k} differs after resume"
    skip = {"epoch_seconds", "images_per_second"}

    def numbers(run_dir):
        return [{k: v for k, v in r.items() if k not in skip} for r in read_metrics(run_dir)]

    assert numbers(resumed.run_dir) == numbers(result_a.run_dir)


def test_few_images_recipe_is_a_valid_two_phase_config():
    cfg = TrainConfig(**recipe("few-images"))
    assert cfg.head_epochs > 0 and cfg.scheduler == "plateau" and cfg.early_stopping_patience
    assert recipe("none") == {} and "few-images" in PRESETS
    with pytest.raises(ConfigError, match="recipe"):
        recipe("nope")


def test_cli_train_with_a_recipe(image_dataset, tmp_path, capsys):
    code = main(
        ["train", str(image_dataset), "--recipe", "few-images", "--epochs", "2",
         "--head-epochs", "1", "--weights", "none", "--image-size", "32", "--batch-size", "8",
         "--device", "cpu", "--precision", "fp32", "--runs-dir", str(tmp_path / "runs")]
    )  # fmt: skip
    assert code == 0
    run_dir = capsys.readouterr().out.strip().splitlines()[-1]
    config = TrainConfig.load(f"{run_dir}/config.json")
    assert config.optimizer == "adamw" and config.rotation == 15.0  # from the recipe
    assert config.epochs == 2 and config.head_epochs == 1  # the flags win
    assert [r["phase"] for r in read_metrics(run_dir)] == [1, 2]


def test_curves_mark_where_fine_tuning_starts():
    from studio import figures as plots

    rows = [
        {"epoch": 1, "train_loss": 1.0, "phase": 1},
        {"epoch": 2, "train_loss": 0.8, "phase": 1},
        {"epoch": 3, "train_loss": 0.5, "phase": 2},
    ]
    fig = plots.curves_figure(rows)
    assert [s.x0 for s in fig.layout.shapes] == [2.5]
    assert not plots.curves_figure([{k: v for k, v in r.items() if k != "phase"} for r in rows])[
        "layout"
    ]["shapes"]


def test_head_phase_trains_on_cached_features_like_the_full_path(make_config):
    """Phase 1 trains the head on backbone features computed once (the backbone is frozen then),
    reaching the head the full forward path reaches; phase 2 goes back to full forward passes."""
    still = dict(crop_scale_min=1.0, crop_scale_max=1.0, hflip=False)
    after_phase_1 = {}
    for cache in (True, False):
        cfg = make_config(**TWO_PHASE, **still, feature_cache=cache)
        result, rec = train(cfg, lambda e: isinstance(e, EpochEnd) and e.epoch == 0)
        assert result.state == "stopped"
        texts = [e.text for e in rec.events if isinstance(e, Message)]
        assert any("features cached" in t for t in texts) == cache
        after_phase_1[cache] = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]
    for key, value in after_phase_1[True].items():
        torch.testing.assert_close(value, after_phase_1[False][key], rtol=1e-4, atol=1e-5)
    finished, _ = train(make_config(**TWO_PHASE))
    assert [r["phase"] for r in read_metrics(finished.run_dir)] == [1, 2, 2]
