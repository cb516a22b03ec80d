"""Partial fine-tuning (``frozen_stages``): the first stages of the backbone keep their weights
and BatchNorm statistics while the rest trains, also after a head-only phase; asking to freeze
every stage is refused with a message that says what to do instead."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from modelkit.models import registry as models
from modelkit.models import stages as model_stages
from modelkit.models.checkpoint import load_checkpoint
from modelkit.training.errors import TrainingError
from modelkit.training.loop import Trainer
from modelkit.training.setup import build_model


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0", "smallresnet"])
def test_the_stages_run_from_the_stem_to_the_last_block(arch):
    model = models.build_model(arch, 3)
    stages = model_stages.backbone_stages(model, arch)
    head = {id(p) for p in models.head_module(model, arch).parameters()}
    in_stages = {id(p) for stage in stages for m in stage for p in m.parameters()}
    assert in_stages == {id(p) for p in model.parameters()} - head  # every backbone weight once
    convs = [m for m in stages[0][0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 3  # the stem, which sees the RGB image, comes first


@pytest.mark.parametrize("head_epochs", [0, 1])
def test_frozen_stages_keep_their_weights_while_the_rest_trains(make_config, head_epochs):
    cfg = make_config(arch="resnet18", frozen_stages=2, epochs=2, head_epochs=head_epochs, lr=0.05)
    start, _ = build_model(cfg, 3, torch.device("cpu"), False)  # seeded: the run's own start
    before = start.state_dict()
    result = Trainer(cfg).fit()
    assert result.state == "finished"
    after = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]
    frozen = ("conv1.", "bn1.", "layer1.")  # stem + layer1: two stages
    for key, value in before.items():
        if "num_batches_tracked" in key:
            continue
        moved = not torch.equal(after[key], value)
        if key.startswith(frozen):  # weights and BatchNorm statistics alike
            assert not moved, f"{key} changed in a frozen stage"
    assert not torch.equal(after["layer4.1.conv2.weight"], before["layer4.1.conv2.weight"])
    assert not torch.equal(after["layer2.0.bn1.running_mean"], before["layer2.0.bn1.running_mean"])


def test_freezing_every_stage_is_refused_before_the_run_starts(make_config):
    cfg = make_config(arch="resnet18", frozen_stages=5)
    with pytest.raises(TrainingError, match="resnet18 has 5 backbone stages.*whole backbone"):
        Trainer(cfg).fit()
    assert not (Path(cfg.runs_dir).exists() and any(Path(cfg.runs_dir).iterdir()))


def test_freeze_bn_keeps_every_backbone_statistic_while_the_weights_train(make_config):
    # the bundled ImageNet weights: statistics worth keeping (and no download)
    cfg = make_config(
        arch="efficientnet_lite0", weights="imagenet", freeze_bn=True, epochs=1, lr=0.05
    )
    start, _ = build_model(cfg, 3, torch.device("cpu"), False)
    before = start.state_dict()
    result = Trainer(cfg).fit()
    after = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(after[k], before[k]) for k in stats)
    assert not torch.equal(after["features.0.1.weight"], before["features.0.1.weight"])  # BN
    assert not torch.equal(after["features.0.0.weight"], before["features.0.0.weight"])  # stem
