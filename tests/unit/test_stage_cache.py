"""Fine-tuning on the cached outputs of the frozen stages: the cut model computes what the whole
one does, training on the cached maps is the training the full loop does (without
augmentation), the frozen stages stay as they were, two-phase runs switch to it, and a stopped
run resumes to the same weights."""

from __future__ import annotations

import pytest
import torch

from modelkit.config import ConfigError
from modelkit.events import BatchEnd, CacheProgress, EpochEnd, Message
from modelkit.models import registry as models
from modelkit.models import stages as model_stages
from modelkit.models.checkpoint import load_checkpoint
from modelkit.models.split import check_split, split_model
from modelkit.training import stage_cache
from modelkit.training.loop import Trainer
from modelkit.training.setup import build_model


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0", "smallresnet", "resnet18_half"])
def test_every_cut_of_every_family_computes_what_the_whole_model_does(arch):
    torch.manual_seed(0)
    model = models.build_model(arch, 3)
    stages = len(model_stages.backbone_stages(model, arch))
    for cut in range(1, stages):
        prefix, rest = split_model(model, arch, cut)
        assert check_split(model, prefix, rest, 48), f"{arch} cut after {cut}"
        # the rest holds the head and every stage after the cut, the prefix none of them
        rest_ids = {id(p) for p in rest.parameters()}
        assert all(id(p) in rest_ids for p in models.head_module(model, arch).parameters())
        assert rest_ids.isdisjoint(id(p) for p in prefix.parameters())
    with pytest.raises(ValueError, match="cannot cut"):
        split_model(model, arch, stages)


def _weights(result, name: str = "last") -> dict[str, torch.Tensor]:
    return load_checkpoint(result.run_dir / "checkpoints" / f"{name}.pt")["model"]


def test_training_on_cached_maps_matches_the_full_loop_without_augmentation(
    make_config, monkeypatch
):
    """No augmentation: the one cached pass is exactly what the full loop feeds the network,
    so one epoch in the same batch order reaches the same weights. (The cache runs the frozen
    stages with BatchNorm folded into the convolutions, which moves the maps by float rounding
    that a few SGD steps of a deep network amplify to ~1e-3; unfolded here, the two agree to the
    last bit.)"""
    monkeypatch.setattr(stage_cache, "folded_copy", lambda module: module)
    common = dict(
        frozen_stages=2, crop_scale_min=1.0, crop_scale_max=1.0, hflip=False, epochs=1, lr=0.05
    )
    events: list = []
    cached = Trainer(make_config(**common, cache_frozen_stages=True), [events.append]).fit()
    full = Trainer(make_config(**common)).fit()
    assert any("on their cached outputs" in e.text for e in events if isinstance(e, Message))
    a, b = _weights(cached), _weights(full)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert cached.last["val_acc"] == full.last["val_acc"]
    assert cached.last["val_loss"] == pytest.approx(full.last["val_loss"], rel=1e-5)


def test_the_frozen_stages_stay_and_the_rest_learns(make_config):
    cfg = make_config(frozen_stages=3, cache_frozen_stages=True, epochs=3, feature_passes=3)
    start, _ = build_model(cfg, 3, torch.device("cpu"), False)  # what the run starts from
    before = {k: v.clone() for k, v in start.state_dict().items()}
    result = Trainer(cfg).fit()
    assert result.state == "finished"
    after = _weights(result)
    frozen = ("conv1.", "bn1.", "layer1.", "layer2.")
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith(frozen))
    moved = [k for k in before if k.startswith(("layer3.", "layer4.", "fc.")) and k in after]
    assert any(not torch.equal(after[k], before[k]) for k in moved)
    assert result.best["val_acc"] > 0.5  # the coloured squares are learnt (3 classes)


def test_a_two_phase_run_computes_the_maps_once_for_the_head_and_fine_tuning(make_config):
    events: list = []
    cfg = make_config(
        head_epochs=1, epochs=3, frozen_stages=2, cache_frozen_stages=True, hflip=True,
        feature_passes=2,
    )  # fmt: skip
    trainer = Trainer(cfg, [events.append])
    assert trainer.fit().state == "finished"
    head_batch = next(i for i, e in enumerate(events) if isinstance(e, BatchEnd))
    cached = [
        (i, e.text) for i, e in enumerate(events)
        if isinstance(e, Message) and "on their cached outputs" in e.text
    ]  # fmt: skip
    assert len(cached) == 1 and cached[0][0] < head_batch  # before the head, and only then
    assert "2 passes" in cached[0][1]
    assert len(trainer.stage_cache.train_passes) == 2  # the centre crop and its mirror image
    # the head's features came from the maps: no pass of the whole backbone over the images
    stages = {e.stage for e in events if isinstance(e, CacheProgress)}
    assert "frozen stages" in stages and "features" not in stages


def test_the_head_learns_the_same_from_maps_as_from_the_whole_backbone(make_config):
    """The head's features computed from the cached maps are the backbone's features: its epoch
    on them ends where the same epoch on features of the images does."""
    common = dict(head_epochs=1, epochs=2, frozen_stages=2, hflip=True, feature_passes=2)
    firsts = []
    for maps in (True, False):
        events: list = []
        Trainer(make_config(**common, cache_frozen_stages=maps), [events.append]).fit()
        firsts.append(next(e.metrics for e in events if isinstance(e, EpochEnd)))
    assert firsts[0]["val_acc"] == firsts[1]["val_acc"]
    assert firsts[0]["val_loss"] == pytest.approx(firsts[1]["val_loss"], rel=1e-4)
    assert firsts[0]["train_loss"] == pytest.approx(firsts[1]["train_loss"], rel=1e-4)


def test_a_stopped_run_resumes_to_the_weights_of_an_uninterrupted_one(make_config):
    settings = dict(frozen_stages=2, cache_frozen_stages=True, epochs=3, feature_passes=3)
    whole = Trainer(make_config(**settings)).fit()

    def stop_after_first_epoch(event):
        if isinstance(event, EpochEnd) and event.epoch == 0:
            trainer.stop()

    trainer = Trainer(make_config(**settings), [stop_after_first_epoch])
    stopped = trainer.fit()
    assert stopped.state == "stopped"
    resumed = Trainer.resume(stopped.run_dir).fit()
    assert resumed.state == "finished"
    a, b = _weights(whole), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_settings_that_cannot_use_cached_maps_are_refused_with_the_reason(make_config):
    with pytest.raises(ConfigError, match="needs frozen_stages"):
        make_config(cache_frozen_stages=True)
    with pytest.raises(ConfigError, match="mixup and cutmix"):
        make_config(cache_frozen_stages=True, frozen_stages=2, mixup_alpha=0.2)
