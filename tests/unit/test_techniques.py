"""Training techniques (#13): each one really acts, and a run with them resumes exactly.

MixUp/CutMix give soft targets and a soft-target loss; EMA weights follow the closed form and
are what evaluation and best.pt use; TrivialAugment/RandAugment change pixels deterministically;
warmup scales the first steps' rate; class balance picks its remedy and says why; TTA averages
the logits of flipped views in evaluation and in the Predictor; progressive resizing trains at
the scheduled sizes; eval_size is recorded for the Predictor.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from modelkit.data.autoaugment import auto_augment
from modelkit.data.imageio import resize_size_for
from modelkit.data.mixing import MixSettings, mix_batch
from modelkit.data.views import progressive_sizes, tta_views
from modelkit.events import EpochEnd, Message
from modelkit.models.checkpoint import load_checkpoint
from modelkit.serving.predictor import Predictor
from modelkit.training import balance, optim
from modelkit.training.callbacks import Callback
from modelkit.training.callbacks.ema import ema_decay, ema_update
from modelkit.training.loop import Trainer

TINY = dict(arch="smallresnet", epochs=3)


def batch(n: int = 8, side: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, side, side, 3), generator=g, dtype=torch.uint8)


def messages(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, Message)]


# -- MixUp / CutMix ---------------------------------------------------------------------------
def test_mixup_gives_soft_targets_and_the_loss_is_soft_target_cross_entropy():
    x = torch.randn(8, 3, 16, 16)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    s = MixSettings(mixup_alpha=0.4)
    mixed, target = mix_batch(x, y, 3, s, torch.Generator().manual_seed(1))
    assert mixed.shape == x.shape and not torch.equal(mixed, x)
    assert target.shape == (8, 3)
    assert torch.allclose(target.sum(1), torch.ones(8))
    assert (target.max(1).values < 1).any(), "mixup must soften the one-hot targets"
    again = mix_batch(x, y, 3, s, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], mixed) and torch.equal(again[1], target)
    logits = torch.randn(8, 3)
    by_hand = -(target * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(nn.CrossEntropyLoss()(logits, target), by_hand)


def test_cutmix_pastes_a_box_and_labels_by_its_area():
    x = torch.zeros(4, 3, 16, 16)
    x[1], x[3] = 1.0, 1.0  # two images of ones, two of zeros
    y = torch.tensor([0, 1, 0, 1])
    s = MixSettings(cutmix_alpha=1.0)
    for seed in range(6):
        mixed, target = mix_batch(x, y, 2, s, torch.Generator().manual_seed(seed))
        assert set(mixed.unique().tolist()) <= {0.0, 1.0}  # pasted, never blended
        # each image's share of ones is its target's share of class 1 (labels by area)
        ones = mixed.mean(dim=(1, 2, 3))
        assert torch.allclose(ones, target[:, 1], atol=1e-6)


def test_mix_prob_zero_and_off_leave_the_batch_alone():
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    for s in (MixSettings(), MixSettings(mixup_alpha=1.0, mix_prob=0.0)):
        out, target = mix_batch(x, y, 2, s, torch.Generator())
        assert torch.equal(out, x) and torch.equal(target, nn.functional.one_hot(y, 2).float())


# -- EMA ----------------------------------------------------------------------------------------
def test_ema_follows_the_closed_form():
    """Live weights held at 1 from an average at 0: after n updates the average is
    1 - prod(decay_t), decay_t warmed up as timm does."""
    ema, live = nn.Linear(2, 1), nn.Linear(2, 1)
    nn.init.zeros_(ema.weight), nn.init.zeros_(ema.bias)
    nn.init.ones_(live.weight), nn.init.ones_(live.bias)
    keep = 1.0
    for n in range(1, 21):
        d = ema_decay(0.9, n)
        ema_update(ema, live, d)
        keep *= d
    assert ema_decay(0.9, 1) == pytest.approx(2 / 11) and ema_decay(0.9, 1000) == 0.9
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 1 - keep))
    assert not torch.equal(ema.weight, live.weight)


def test_ema_run_evaluates_and_keeps_the_ema_weights(make_config):
    trainer = Trainer(make_config(ema=True, ema_decay=0.9, **TINY))
    result = trainer.fit()
    last = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    ema = last["callbacks"]["EMA"]["weights"]
    assert last["callbacks"]["EMA"]["updates"] == trainer.state.global_step
    assert any(not torch.equal(ema[k], v) for k, v in last["model"].items())
    # what was evaluated is the EMA model; the final evaluation loaded best.pt into it
    best = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    for k, v in trainer.ema_model.state_dict().items():
        assert torch.equal(v.cpu(), best["model"][k])


# -- TrivialAugment / RandAugment --------------------------------------------------------------
@pytest.mark.parametrize("mode", ["trivialaugment", "randaugment"])
def test_auto_augment_changes_pixels_keeps_shape_and_is_seeded(mode):
    x = batch()
    out = auto_augment(x, mode, 9, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert sum(not torch.equal(a, b) for a, b in zip(out, x, strict=True)) >= 4
    assert torch.equal(out, auto_augment(x, mode, 9, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, auto_augment(x, mode, 9, torch.Generator().manual_seed(1)))
    assert torch.equal(auto_augment(x, "none", 9, torch.Generator()), x)


def test_auto_augment_parts_match_the_whole_batch():
    """Split over processes (``part``), each image is augmented as in the whole batch."""
    x = batch(6)
    whole = auto_augment(x, "trivialaugment", 9, torch.Generator().manual_seed(4))
    parts = [
        auto_augment(x[o : o + 3], "trivialaugment", 9, torch.Generator().manual_seed(4), (o, 6))
        for o in (0, 3)
    ]
    assert torch.equal(torch.cat(parts), whole)


# -- warmup -------------------------------------------------------------------------------------
def test_warmup_factor_and_onecycle_warmup_length(make_config):
    assert [optim.warmup_factor(s, 4) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert optim.warmup_factor(0, 0) == 1.0
    cfg = make_config(scheduler="onecycle", warmup_epochs=1, epochs=4)
    assert optim.scheduler_kwargs(cfg, cfg.epochs, 10, "val_loss")["pct_start"] == 0.25


class LrSpy(Callback):
    def __init__(self):
        self.lrs: list[float] = []
        self.sizes: list[int] = []

    def on_fit_start(self, trainer):
        def record(module, args):
            if module.training:
                self.sizes.append(args[0].shape[-1])

        trainer.model.register_forward_pre_hook(record)

    def on_batch_start(self, trainer, epoch, b):
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


def test_warmup_raises_the_rate_over_the_first_epoch(make_config):
    spy = LrSpy()
    cfg = make_config(warmup_epochs=1, scheduler="none", **TINY)
    trainer = Trainer(cfg, callbacks=[spy])
    trainer.fit()
    steps = trainer.steps_per_epoch
    expected = [cfg.lr * (s + 1) / steps for s in range(steps)] + [cfg.lr] * steps
    assert spy.lrs[: 2 * steps] == pytest.approx(expected)
    last = load_checkpoint(trainer.run_dir / "checkpoints" / "last.pt")
    assert last["optimizer"]["param_groups"][0]["lr"] == cfg.lr  # never the scaled rate


# -- class balance ------------------------------------------------------------------------------
def test_class_balance_choice_and_reason():
    labels = [0] * 40 + [1] * 10
    remedy, reason = balance.choose(labels, 2, "auto")
    assert remedy == "sqrt_weighted_loss" and "40" in reason and "10" in reason and "4.0x" in reason
    assert balance.choose([0] * 20 + [1] * 10, 2, "auto")[0] == "none"
    assert balance.choose(labels, 2, "sampler")[0] == "sampler"
    assert balance.choose(labels, 2, "weighted_loss")[0] == "weighted_loss"
    w = balance.class_weights(labels, 2)
    assert w[1] / w[0] == pytest.approx(4.0) and w.mean() == pytest.approx(1.0)
    soft = balance.class_weights(labels, 2, balance.POWERS["sqrt_weighted_loss"])
    assert soft[1] / soft[0] == pytest.approx(2.0) and soft.mean() == pytest.approx(1.0)
    absent = balance.class_weights(labels, 3, 0.5)  # a class with no images gets no weight
    assert absent[2] == 0 and absent[:2].mean() == pytest.approx(1.0)
    order = balance.epoch_order(torch.tensor(labels), w, torch.Generator().manual_seed(0))
    drawn = torch.tensor(labels)[order]
    assert 0.3 < float((drawn == 1).float().mean()) < 0.7  # balanced draws, not 20%


@pytest.mark.parametrize(
    "setting, remedy",
    [("auto", "sqrt_weighted_loss"), ("weighted_loss", "weighted_loss"), ("sampler", "sampler")],
)
def test_class_balance_on_an_imbalanced_run(make_dataset, make_config, setting, remedy):
    data = make_dataset("imbalanced", num_classes=2, per_class=12)
    for path in sorted((data / "green").iterdir())[3:]:
        path.unlink()  # 12 red, 3 green
    events: list = []
    trainer = Trainer(make_config(data_dir=data, class_balance=setting, **TINY), [events.append])
    trainer.fit()
    said = [m for m in messages(events) if m.startswith("class balance")]
    assert len(said) == 1 and remedy in said[0] and "smallest" in said[0]
    if remedy.endswith("weighted_loss"):
        rare, common = trainer.classes.index("green"), trainer.classes.index("red")
        weight = trainer.criterion.weight
        labels = [s.label for s in trainer.splits["train"]]
        sizes = labels.count(common) / labels.count(rare)  # ~4 (12 red, 3 green, less val)
        ratio = sizes if remedy == "weighted_loss" else sizes**0.5
        assert weight is not None and float(weight[rare] / weight[common]) == pytest.approx(ratio)
    else:
        assert trainer.sampler_weights is not None and trainer.criterion.weight is None


# -- TTA and evaluation size --------------------------------------------------------------------
def test_tta_views():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    assert len(tta_views(x, 4, "none")) == 1
    centre, flipped = tta_views(x, 4, "flip")
    assert torch.equal(flipped, centre.flip(-1)) and torch.equal(centre, x[..., 1:5, 1:5])
    assert len(tta_views(x, 4, "flip_crops")) == 10


def test_tta_flip_averages_logits_in_evaluation_and_in_the_predictor(make_config):
    trainer = Trainer(make_config(tta="flip", **TINY))
    result = trainer.fit()
    pre = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")["preprocess"]
    assert pre["tta"] == "flip"
    logits, _ = trainer.predict("val")
    rows = trainer.data.rows["val"]
    x = trainer.data.cache.batch(rows).float().permute(0, 3, 1, 2) / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (pre["mean"], pre["std"]))
    top = (x.shape[-1] - 32) // 2
    centre = (x[..., top : top + 32, top : top + 32] - mean) / std
    with torch.no_grad():
        model = trainer.eval_model.eval()
        by_hand = (model(centre) + model(centre.flip(-1))) / 2
    assert torch.allclose(logits, by_hand, atol=1e-5)
    # each epoch's validation looks at the centre view only (half the cost); the final one and
    # the Predictor average the views
    plain, _ = trainer.predict("val", tta=False)
    with torch.no_grad():
        assert torch.allclose(plain, model(centre), atol=1e-5)
    predictor = Predictor(result.run_dir, device="cpu")
    assert predictor.tta == "flip"
    squares = [trainer.data.cache.batch(rows[i : i + 1])[0].numpy() for i in range(len(rows))]
    assert torch.allclose(predictor.logits(squares), by_hand, atol=1e-4)


def test_eval_size_is_what_the_predictor_uses(make_config):
    trainer = Trainer(make_config(eval_size=48, **TINY))
    result = trainer.fit()
    assert trainer.data.cache.array.shape[1] == resize_size_for(48)
    pre = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")["preprocess"]
    assert pre["image_size"] == 48 and pre["resize_size"] == resize_size_for(48)
    assert Predictor(result.run_dir, device="cpu").image_size == 48


# -- progressive resizing -----------------------------------------------------------------------
def test_progressive_schedule():
    assert progressive_sizes(8, 64, 224) == [64, 96, 112, 144, 176, 192, 224, 224]
    assert progressive_sizes(1, 64, 224) == [224]
    sizes = progressive_sizes(20, 96, 160)
    assert sizes == sorted(sizes) and sizes[-5:] == [160] * 5 and sizes[0] == 96


def test_progressive_resizing_trains_at_the_scheduled_sizes(make_config):
    spy = LrSpy()
    cfg = make_config(
        progressive_resize=True, progressive_min_size=16, epochs=4, arch="smallresnet"
    )
    trainer = Trainer(cfg, callbacks=[spy])
    trainer.fit()
    steps = trainer.steps_per_epoch
    want = progressive_sizes(4, 16, 32)
    assert want[0] == 16 and want[-1] == 32
    assert spy.sizes == [size for size in want for _ in range(steps)]


def test_progressive_resizing_follows_a_run_whose_epochs_change(make_config):
    """A time budget fixes the number of epochs after the first ones: the size schedule is laid
    out again over the new length instead of running off its end."""

    class MoreEpochs(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 0:
                trainer.config = trainer.config.replace(epochs=4)

    spy = LrSpy()
    cfg = make_config(
        progressive_resize=True, progressive_min_size=16, epochs=2, arch="smallresnet"
    )
    trainer = Trainer(cfg, callbacks=[MoreEpochs(), spy])
    assert trainer.fit().state == "finished"
    assert spy.sizes[-1] == 32 and len(set(spy.sizes)) > 1


# -- exact resume with every technique on --------------------------------------------------------
def test_exact_resume_with_every_technique(make_config):
    settings = dict(
        ema=True, ema_decay=0.9, mixup_alpha=0.4, cutmix_alpha=1.0, mix_prob=0.8,
        auto_augment="trivialaugment", warmup_epochs=1.5, class_balance="sampler",
        tta="flip", progressive_resize=True, progressive_min_size=16, eval_size=40, **TINY,
    )  # fmt: skip
    cfg = make_config(**settings)
    a = Trainer(cfg).fit()
    stop = {"trainer": None}

    def after_first_epoch(event):
        if isinstance(event, EpochEnd) and event.epoch == 0:
            stop["trainer"].stop()

    b_trainer = Trainer(make_config(**settings), [after_first_epoch])
    stop["trainer"] = b_trainer
    assert b_trainer.fit().state == "stopped"
    resumed = Trainer.resume(b_trainer.run_dir).fit()
    assert resumed.state == "finished"
    ca = load_checkpoint(a.run_dir / "checkpoints" / "last.pt")
    cb = load_checkpoint(resumed.run_dir / "checkpoints" / "last.pt")
    assert ca["epoch"] == cb["epoch"] == 3
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), f"{k} differs after resume"
    ema_a, ema_b = ca["callbacks"]["EMA"], cb["callbacks"]["EMA"]
    assert ema_a["updates"] == ema_b["updates"]
    for k in ema_a["weights"]:
        assert torch.equal(ema_a["weights"][k], ema_b["weights"][k]), f"EMA {k} differs"


@pytest.mark.parametrize("epochs,steps", [(1, 1), (1, 3), (1, 5), (2, 5), (10, 1)])
@pytest.mark.parametrize("pct_start", [0.0, 0.05, 0.3, 1.0])
def test_onecycle_with_any_warmup_share_runs_every_step(epochs, steps, pct_start):
    """A warm-up of one step (or of every step) in a short run divided by zero inside torch's
    OneCycleLR; the share is moved just enough that both phases have a step."""
    from modelkit.training.optim import create_scheduler

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = create_scheduler(opt, "onecycle", epochs, steps, pct_start=pct_start)
    rates = []
    for _ in range(epochs * steps):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    assert all(math.isfinite(r) and r >= 0 for r in rates)
