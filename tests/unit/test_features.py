"""The frozen-backbone feature cache: same outputs as the full model, and training on it works,
resumes exactly and gives the head the same gradient signal as the full path without
augmentation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from modelkit.data.augment import (
    IMAGENET_NORM,
    AugmentSettings,
    eval_batch,
    eval_views,
    train_batch,
)
from modelkit.data.cache import ImageCache
from modelkit.data.scan import scan_dataset
from modelkit.events import CacheProgress, EpochEnd, Message
from modelkit.models import registry as models
from modelkit.models.checkpoint import load_checkpoint
from modelkit.training.features import backbone_features, headless, pass_view
from modelkit.training.loop import Trainer


def test_cached_features_give_the_same_head_outputs_as_the_full_model(image_dataset):
    torch.manual_seed(0)
    model = models.build_model("resnet18", 3, "mlp", [16], 0.0).eval()
    paths = [s.path for s in scan_dataset(image_dataset).splits["train"]]
    cache = ImageCache(paths, 37)
    rows = np.arange(len(paths))
    device = torch.device("cpu")
    feats = backbone_features(model, "resnet18", cache, rows, 32, device, "fp32", batch_size=7)
    assert feats.shape == (len(paths), 512)
    via_cache = models.head_module(model, "resnet18")(feats)
    with torch.no_grad():
        full = model(eval_batch(cache.batch(rows), 32))
    torch.testing.assert_close(via_cache.detach(), full, rtol=1e-4, atol=1e-5)
    assert isinstance(model.fc, torch.nn.Sequential)  # the head is put back


def test_cached_passes_are_the_centre_crop_its_mirror_then_random_views():
    """A cached pass is reused every few epochs: the first two are the evaluation view and its
    mirror image (a random crop reused is no augmentation); later ones random views."""
    x = torch.randint(0, 256, (3, 40, 40, 3), dtype=torch.uint8)
    centre = eval_views(x, 32, True, IMAGENET_NORM)[0]

    def view(k: int, settings: AugmentSettings) -> torch.Tensor:
        return pass_view(x, k, 32, settings, torch.Generator().manual_seed(0), True, IMAGENET_NORM)

    flips = AugmentSettings()
    assert torch.equal(view(0, flips), centre)
    assert torch.equal(view(1, flips), centre.flip(-1))
    assert not torch.allclose(view(2, flips), centre, atol=0.1)
    no_flips = AugmentSettings(hflip=False)  # pass 1 is not the centre crop a second time
    assert not torch.allclose(view(1, no_flips), centre, atol=0.1)
    plain = AugmentSettings(crop_scale=(1.0, 1.0), hflip=False)  # what the full loop feeds
    g = torch.Generator().manual_seed(0)
    assert torch.equal(view(0, plain), train_batch(x, 32, plain, g, True, norm=IMAGENET_NORM))


def test_no_augmentation_is_recognised():
    still = AugmentSettings(crop_scale=(1.0, 1.0), hflip=False)
    assert not still.augments
    assert AugmentSettings().augments
    # every augmentation the pipeline applies counts, none listed by hand
    changes = dict(
        hflip=True, vflip=True, rotation=10.0, shear=5.0, zoom=0.2, brightness=0.2,
        contrast=0.2, saturation=0.2, hue=0.05, auto_augment="trivialaugment",
        crop_scale=(0.5, 1.0),
    )  # fmt: skip
    for name, value in changes.items():
        assert replace(still, **{name: value}).augments, name
    assert not replace(still, randaugment_magnitude=20).augments  # only with randaugment on


def test_frozen_training_on_cached_features_matches_the_full_path(make_config):
    """Without augmentation the cached path trains the head on exactly the features the full
    path computes, so one epoch (same batch order) reaches the same head weights. (Later epochs
    shuffle differently: the full path also draws augmentation numbers from the generator.)"""
    common = dict(
        freeze_backbone=True,
        crop_scale_min=1.0,
        crop_scale_max=1.0,
        hflip=False,
        epochs=1,
        lr=0.05,
    )
    cached = Trainer(make_config(**common, feature_cache=True)).fit()
    full = Trainer(make_config(**common, feature_cache=False)).fit()
    a = load_checkpoint(cached.run_dir / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(full.run_dir / "checkpoints" / "last.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert cached.last["val_acc"] == pytest.approx(full.last["val_acc"])


def test_feature_passes_with_augmentation_and_exact_resume(make_config):
    events = []
    cfg = make_config(freeze_backbone=True, epochs=3, feature_passes=2, hflip=True)
    whole = Trainer(cfg, [events.append]).fit()
    assert any("2 augmentation passes" in e.text for e in events if isinstance(e, Message))

    def stop_after_first_epoch(event):
        if isinstance(event, EpochEnd) and event.epoch == 0:
            trainer.stop()

    trainer = Trainer(make_config(freeze_backbone=True, epochs=3, feature_passes=2))
    trainer.listeners.append(stop_after_first_epoch)
    stopped = trainer.fit()
    assert stopped.state == "stopped"
    resumed = Trainer.resume(stopped.run_dir).fit()
    assert resumed.state == "finished"
    a = load_checkpoint(whole.run_dir / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(resumed.run_dir / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_first_epoch_waits_for_one_augmentation_pass_only(make_config):
    """Pass k is computed when epoch k needs it: the first epoch starts after one pass (and the
    validation features), not after all of them; by the end every pass exists."""
    events = []
    trainer = Trainer(make_config(freeze_backbone=True, epochs=3, feature_passes=3, hflip=True))
    trainer.listeners.append(events.append)
    assert trainer.fit().state == "finished"
    first_epoch = next(i for i, e in enumerate(events) if isinstance(e, EpochEnd))
    before = [e for e in events[:first_epoch] if isinstance(e, CacheProgress)]
    features = [e for e in before if e.stage == "features"]
    n_train, n_val = len(trainer.data.rows["train"]), len(trainer.data.rows["val"])
    assert features[-1].done == features[-1].total == n_train + n_val
    assert len(trainer.features.train_passes) == 3


def _centre_crop_features(trainer: Trainer) -> torch.Tensor:
    """The trained run's backbone output on the centre crop of every training image."""
    cfg, data, model = trainer.config, trainer.data, trainer.model.eval()
    x = eval_views(data.cache.batch(data.rows["train"]), cfg.image_size, False, IMAGENET_NORM)[0]
    with torch.no_grad(), headless(model, cfg.arch) as body:
        return body(x)


@pytest.mark.parametrize("eval_size", [0, 48])
def test_the_first_pass_is_the_evaluation_view_the_others_are_augmented(make_config, eval_size):
    """A head trained on random crops alone sees objects at other scales than the centre crop it
    is judged on; pass 0 is that centre crop (of the squares resized to the training size when
    they were cached for a larger evaluation size), so the head learns the view it is judged on."""
    cfg = make_config(
        freeze_backbone=True, epochs=2, feature_passes=2, hflip=True, eval_size=eval_size
    )
    trainer = Trainer(cfg)
    assert trainer.fit().state == "finished"
    centre = _centre_crop_features(trainer)
    first, second = trainer.features.train_passes
    torch.testing.assert_close(first, centre, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(second, centre, rtol=1e-3, atol=1e-4)


def test_a_single_pass_with_augmentation_is_the_centre_crop(make_config):
    """One cached pass is reused every epoch: one random crop of each image would be a fixed,
    off-centre view (no augmentation, and a worse head), so it is the centre crop."""
    cfg = make_config(freeze_backbone=True, epochs=3, feature_passes=1, hflip=True)
    trainer = Trainer(cfg)
    assert trainer.fit().state == "finished"
    centre = _centre_crop_features(trainer)
    (only,) = trainer.features.train_passes
    torch.testing.assert_close(only, centre, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("tta, eval_size, views", [("flip", 0, 2), ("none", 48, 1)])
def test_evaluation_views_are_cached_too_and_match_the_full_pass(
    make_config, tta, eval_size, views
):
    """With test-time augmentation or a larger evaluation size, the validation split's features
    are those views' (computed once), and its logits are what the full forward pass gives."""
    from modelkit.training.evaluation_pass import split_logits

    cfg = make_config(freeze_backbone=True, epochs=1, tta=tta, eval_size=eval_size)
    trainer = Trainer(cfg)
    assert trainer.fit().state == "finished"
    assert trainer.features.splits["val"].shape[0] == views
    cached, labels = split_logits(trainer, "val")
    cached_centre, _ = split_logits(trainer, "val", tta=False)  # each epoch's validation
    trainer.features = None
    full, _ = split_logits(trainer, "val")
    torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-4)
    full_centre, _ = split_logits(trainer, "val", tta=False)
    torch.testing.assert_close(cached_centre, full_centre, rtol=1e-4, atol=1e-4)
    assert torch.equal(labels, trainer.data.labels["val"])
