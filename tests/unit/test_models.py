"""Architecture registry, heads, freezing, parameter groups and starting weights (offline)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models as tvm

from modelkit.models import registry as models
from modelkit.models.registry import (
    ARCHITECTURES,
    WeightsError,
    build_model,
    head_module,
    load_starting_weights,
)
from modelkit.models.stages import freeze_batchnorm, parameter_groups, set_backbone_trainable


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_builds_with_our_head(arch):
    model = build_model(arch, 7)
    linears = [m for m in head_module(model, arch).modules() if isinstance(m, nn.Linear)]
    assert linears[-1].out_features == 7
    widths = {"resnet18": 512, "resnet34": 512, "smallresnet": 128, "resnet18_half": 256}
    widths |= {"efficientnet_b0": 1280}
    widths |= {"efficientnet_b1": 1280, "efficientnet_b2": 1408, "efficientnet_b3": 1536}
    widths |= {name: 1280 for name in ARCHITECTURES if name.startswith("efficientnet_lite")}
    expected_in = widths.get(arch, 2048)
    assert linears[0].in_features == expected_in


def test_half_width_resnet18_keeps_resnet18s_resolutions_at_a_quarter_of_the_work():
    """resnet18_half trades width for epochs under a CPU budget: the same spatial layout as
    ResNet-18 (112 px in, 4x4 before pooling), about a quarter of the parameters."""
    full, half = build_model("resnet18", 5), build_model("resnet18_half", 5)
    seen = {}
    for name, model, last_stage in (("half", half, half.stages[-1]), ("full", full, full.layer4)):
        last_stage.register_forward_hook(
            lambda m, i, out, name=name: seen.update({name: out.shape})
        )
        with torch.no_grad():
            model.eval()(torch.randn(1, 3, 112, 112))
    assert seen["half"][2:] == seen["full"][2:] == (4, 4)
    assert (seen["half"][1], seen["full"][1]) == (256, 512)
    n_full, n_half = (sum(p.numel() for p in m.parameters()) for m in (full, half))
    assert 0.2 < n_half / n_full < 0.3
    with pytest.raises(WeightsError, match="resnet18_half has no ImageNet weights"):
        load_starting_weights(half, "resnet18_half", "imagenet")


def test_small_model_forward_shape():
    model = build_model("resnet18", 3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 3)


def test_mlp_head_with_hidden_sizes_and_dropout():
    model = build_model("resnet18", 4, head="mlp", head_hidden=[64, 32], head_dropout=0.5)
    head = head_module(model, "resnet18")
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 64), (64, 32), (32, 4)]
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.5 for m in head) == 2
    assert sum(isinstance(m, nn.ReLU) for m in head) == 2
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_linear_head_dropout():
    head = head_module(build_model("resnet18", 3, head_dropout=0.2), "resnet18")
    assert isinstance(head[0], nn.Dropout) and isinstance(head[1], nn.Linear)
    plain = head_module(build_model("resnet18", 3), "resnet18")
    assert len(plain) == 1 and isinstance(plain[0], nn.Linear)


def test_freeze_backbone_leaves_only_the_head_trainable():
    model = build_model("resnet18", 3, head="mlp", head_hidden=[16])
    set_backbone_trainable(model, "resnet18", False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("fc.") for n in trainable)
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith("fc.")}
    total = sum(p.numel() for p in model.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n_trainable == sum(p.numel() for p in head_module(model, "resnet18").parameters())
    assert total > 10 * n_trainable
    set_backbone_trainable(model, "resnet18", True)
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_batchnorm_keeps_backbone_statistics():
    model = build_model("resnet18", 3)
    model.train()
    freeze_batchnorm(model, "resnet18")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    before = model.bn1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32))
    assert torch.equal(model.bn1.running_mean, before)


def test_parameter_groups_separate_backbone_lr_and_no_decay():
    model = build_model("resnet18", 3)
    groups = parameter_groups(model, "resnet18", lr=0.1, backbone_lr=0.01, weight_decay=1e-4)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"backbone", "backbone-no-decay", "head", "head-no-decay"}
    assert by_name["backbone"]["lr"] == by_name["backbone-no-decay"]["lr"] == 0.01
    assert by_name["head"]["lr"] == by_name["head-no-decay"]["lr"] == 0.1
    assert by_name["backbone"]["weight_decay"] == by_name["head"]["weight_decay"] == 1e-4
    assert by_name["backbone-no-decay"]["weight_decay"] == 0.0
    assert all(p.ndim <= 1 for p in by_name["head-no-decay"]["params"])
    head_ids = {id(p) for p in head_module(model, "resnet18").parameters()}
    assert {id(p) for p in by_name["head"]["params"]} <= head_ids
    # every parameter in exactly one group
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    # same lr everywhere without backbone_lr; a frozen backbone is left out entirely
    assert {g["lr"] for g in parameter_groups(model, "resnet18", 0.1, None, 0.0)} == {0.1}
    set_backbone_trainable(model, "resnet18", False)
    frozen = parameter_groups(model, "resnet18", 0.1, 0.01, 1e-4)
    assert {g["name"] for g in frozen} == {"head", "head-no-decay"}


def test_weights_none_is_random_init():
    model = build_model("resnet18", 3)
    assert load_starting_weights(model, "resnet18", "none") == "random initialisation"


# -- ImageNet weights, offline ----------------------------------------------------------------


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache in tmp_path (TORCH_HOME), so nothing touches ~/.cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    hub = Path(torch.hub.get_dir())
    assert hub == tmp_path / "torch" / "hub"
    return hub


def cached_weights_path(hub: Path, arch: str = "resnet18") -> Path:
    return hub / "checkpoints" / os.path.basename(ARCHITECTURES[arch].weights.url)


def test_imagenet_weights_from_a_prepared_cache(hub_dir, no_network):
    torch.manual_seed(123)
    reference = tvm.resnet18(weights=None)  # 1000-class ImageNet layout
    path = cached_weights_path(hub_dir)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    model = build_model("resnet18", 3)
    head_before = {k: v.clone() for k, v in head_module(model, "resnet18").state_dict().items()}
    source = load_starting_weights(model, "resnet18", "imagenet")
    assert "ImageNet" in source
    assert no_network == []  # served from the cache, no download attempted
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    for k, v in head_module(model, "resnet18").state_dict().items():
        assert torch.equal(v, head_before[k]), f"head tensor {k} was overwritten"


def test_imagenet_weights_offline_without_cache_says_what_to_do(hub_dir, no_network, capsys):
    model = build_model("resnet18", 3)
    with pytest.raises(WeightsError) as info:
        load_starting_weights(model, "resnet18", "imagenet")
    message = str(info.value)
    assert no_network == [ARCHITECTURES["resnet18"].weights.url]
    assert "--weights none" in message
    assert str(cached_weights_path(hub_dir)) in message
    assert ARCHITECTURES["resnet18"].weights.url in message
    assert capsys.readouterr().out == ""  # stdout stays clean for the CLI's run folder line


def test_damaged_cached_imagenet_file_is_reported(hub_dir, no_network):
    path = cached_weights_path(hub_dir)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 half a download")
    with pytest.raises(WeightsError) as info:
        load_starting_weights(build_model("resnet18", 3), "resnet18", "imagenet")
    assert str(path) in str(info.value) and "delete" in str(info.value)


class _MakeDir:
    """Pickles to a call of os.makedirs: proof of code running on load if the folder appears."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.makedirs, (self.target,))


def test_cached_imagenet_file_is_loaded_without_running_pickles(hub_dir, no_network, tmp_path):
    marker = tmp_path / "code-ran"
    path = cached_weights_path(hub_dir)
    path.parent.mkdir(parents=True)
    torch.save({"conv1.weight": torch.zeros(1), "evil": _MakeDir(str(marker))}, path)
    with pytest.raises(WeightsError):
        load_starting_weights(build_model("resnet18", 3), "resnet18", "imagenet")
    assert not marker.exists()


# -- weights from files and runs --------------------------------------------------------------


def test_starting_from_a_state_dict_file(tmp_path):
    torch.manual_seed(1)
    donor = build_model("resnet18", 3)
    path = tmp_path / "weights.pth"
    torch.save(donor.state_dict(), path)
    model = build_model("resnet18", 3)
    source = load_starting_weights(model, "resnet18", str(path))
    assert str(path) in source
    for (k, a), b in zip(model.state_dict().items(), donor.state_dict().values()):
        assert torch.equal(a, b), k  # same classes: the head fits and is kept too


def test_a_head_for_other_classes_is_left_new(tmp_path):
    torch.manual_seed(1)
    donor = build_model("resnet18", 5)
    path = tmp_path / "weights.pth"
    torch.save(donor.state_dict(), path)
    model = build_model("resnet18", 3)
    head_before = model.fc[0].weight.clone()
    load_starting_weights(model, "resnet18", str(path))
    assert torch.equal(model.layer1[0].conv1.weight, donor.layer1[0].conv1.weight)
    assert torch.equal(model.fc[0].weight, head_before)


def test_starting_from_a_previous_run(checkpoint_file):
    from modelkit.models.checkpoint import load_checkpoint

    best = load_checkpoint(checkpoint_file)["model"]
    run_dir = checkpoint_file.parent.parent
    for weights in (str(run_dir), str(checkpoint_file)):
        model = build_model("resnet18", 4)  # one class more than the run: new head
        load_starting_weights(model, "resnet18", weights)
        assert torch.equal(model.conv1.weight, best["conv1.weight"])
        assert torch.equal(model.bn1.running_mean, best["bn1.running_mean"])
        assert model.fc[0].out_features == 4


def test_weights_that_do_not_fit_are_refused(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(build_model("resnet50", 3).state_dict(), path)
    with pytest.raises(WeightsError, match="do not fit resnet18"):
        load_starting_weights(build_model("resnet18", 3), "resnet18", str(path))


def test_unusable_weight_files_raise_weights_error(tmp_path):
    model = build_model("resnet18", 3)
    with pytest.raises(WeightsError, match="not found"):
        load_starting_weights(model, "resnet18", str(tmp_path / "missing.pt"))
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.ones(3), tensor)
    with pytest.raises(WeightsError, match="not a checkpoint"):
        load_starting_weights(model, "resnet18", str(tensor))
    nested = tmp_path / "nested.pt"
    torch.save({"epoch": 3, "note": "no tensors"}, nested)
    with pytest.raises(WeightsError, match="not a state_dict"):
        load_starting_weights(model, "resnet18", str(nested))


def test_registry_entries_are_consistent():
    for name, spec in ARCHITECTURES.items():
        assert spec.name == name
        assert spec.weights is None or spec.weights.url.startswith("https://")
    assert models.IMAGENET_MEAN == (0.485, 0.456, 0.406)
