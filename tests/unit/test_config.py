"""TrainConfig: types and ranges checked up front, all problems at once, JSON round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from modelkit.config import ConfigError, TrainConfig


def problems_of(**kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(kwargs)
    return str(info.value).splitlines()


def test_defaults_are_valid():
    cfg = TrainConfig()
    assert cfg.arch == "resnet18" and cfg.epochs == 10 and cfg.backbone_lr is None


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("epochs", "3", "epochs: expected int, got str '3'"),
        ("epochs", 3.0, "epochs: expected int, got float"),
        ("batch_size", True, "batch_size: expected int, got bool"),
        ("hflip", 1, "hflip: expected bool, got int"),
        ("hflip", "yes", "hflip: expected bool, got str"),
        ("lr", "0.1", "lr: expected float, got str"),
        ("lr", False, "lr: expected float, got bool"),
        ("head_hidden", 256, "head_hidden: expected list[int], got int"),
        ("head_hidden", [256, "128"], "head_hidden: expected list[int], got list"),
        ("head_hidden", [True], "head_hidden: expected list[int], got list"),
        ("arch", ["resnet18"], "arch: expected str, got list"),
        ("backbone_lr", "x", "backbone_lr: expected float | None, got str"),
    ],
)
def test_wrong_types_are_named(field, value, expected):
    problems = problems_of(**{field: value})
    assert len(problems) == 1
    assert problems[0].startswith(expected)


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("epochs", 10001),
        ("batch_size", 0),
        ("image_size", 8),
        ("image_size", 4096),
        ("lr", 0.0),
        ("lr", -1.0),
        ("lr", float("nan")),
        ("val_ratio", 1.0),
        ("momentum", 1.0),
        ("head_dropout", 1.0),
        ("head_hidden", [0]),
        ("crop_scale_min", 0.0),
        ("hue", 0.6),
        ("rotation", 181.0),
        ("seed", -1),
        ("cache_ram_mb", -5),
        ("arch", "resnet9000"),
        ("optimizer", "lion"),
        ("scheduler", "warmup"),
        ("monitor", "train_acc"),
        ("precision", "int8"),
        ("device", "tpu"),
        ("head", "transformer"),
    ],
)
def test_out_of_range_values(field, value):
    problems = problems_of(**{field: value})
    assert problems[0].startswith(field), problems


def test_cross_field_ranges():
    assert any("val_ratio + test_ratio" in p for p in problems_of(val_ratio=0.6, test_ratio=0.5))
    assert any("crop_scale" in p for p in problems_of(crop_scale_min=0.9, crop_scale_max=0.5))
    assert any("freeze_bn" in p for p in problems_of(freeze_bn=True, weights="none"))
    TrainConfig.from_dict({"freeze_bn": True, "weights": "imagenet"})  # pretrained: fine


def test_ints_accepted_for_floats_and_stored_as_floats():
    cfg = TrainConfig.from_dict({"lr": 1, "backbone_lr": 0, "zoom": 0})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.backbone_lr == 0.0 and isinstance(cfg.backbone_lr, float)


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match=r"unknown keys \['epoch', 'learning_rate'\]"):
        TrainConfig.from_dict({"epoch": 3, "learning_rate": 0.1})


def test_from_dict_needs_an_object():
    with pytest.raises(ConfigError, match="expected a JSON object, got list"):
        TrainConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_all_problems_are_listed_at_once():
    problems = problems_of(
        epochs="3",  # wrong type
        hflip="no",  # wrong type
        lr=-1.0,  # out of range
        batch_size=0,  # out of range
        optimizer="lion",  # not a choice
        colour_jitter=0.2,  # unknown key
    )
    joined = "\n".join(problems)
    for name in ("epochs:", "hflip:", "lr:", "batch_size:", "optimizer:", "colour_jitter"):
        assert name in joined, joined
    assert len(problems) == 6, joined


def test_a_config_is_frozen_and_a_changed_copy_is_validated():
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 0  # what was asked never changes under a run
    with pytest.raises(ConfigError, match="batch_size"):
        cfg.replace(batch_size=-1)
    assert cfg.replace(lr=1).lr == 1.0 and isinstance(cfg.replace(lr=1).lr, float)
    assert cfg.epochs == TrainConfig().epochs


def test_json_round_trip(tmp_path):
    cfg = TrainConfig(
        data_dir="/data/photos",
        arch="resnet50",
        head="mlp",
        head_hidden=[128, 64],
        head_dropout=0.25,
        backbone_lr=0.001,
        epochs=7,
        scheduler="onecycle",
        rotation=10.0,
        hflip=False,
        run_name="my run",
    )
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json(), encoding="utf-8")
    again = TrainConfig.load(path)
    assert again == cfg
    assert json.loads(cfg.to_json()) == cfg.to_dict()
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_load_reports_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        TrainConfig.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read config"):
        TrainConfig.load(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"epochs": "ten"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="epochs: expected int"):
        TrainConfig.load(wrong)


def test_every_field_is_declared_once_with_its_schema():
    from modelkit.config import GROUPS, schema

    settings = schema()
    assert [s.name for s in settings] == list(TrainConfig().to_dict())
    assert all(s.help and s.label and s.group in GROUPS for s in settings)
    labels = [s.label for s in settings]
    assert len(set(labels)) == len(labels), "the form finds widgets by label"
    essentials = {s.name for s in settings if s.essential}
    assert essentials == {"data_dir", "arch", "weights", "epochs", "image_size", "batch_size", "lr"}
    for s in settings:  # every default is valid, and inside the declared range
        assert s.problem(s.default) is None, s.name


def test_schema_ranges_are_what_validation_enforces():
    from modelkit.config import schema

    bounded = [s for s in schema() if s.bounds is not None and s.base in (int, float)]
    for s in bounded:
        low = s.bounds.low - (0 if s.bounds.low_open else 1e-9 if s.base is float else 1)
        value = s.base(low) if s.base is int else low
        problems = problems_of(**{s.name: value})
        assert problems[0].startswith(f"{s.name}: must be"), problems


def test_head_hidden_is_bounded():
    assert problems_of(head_hidden=[8193]) == ["head_hidden: each size must be between 1 and 8192"]
    assert TrainConfig(head="mlp", head_hidden=[8192]).head_hidden == [8192]


def test_old_saved_configs_load(tmp_path):
    """A config.json written before a field existed loads with that field's default."""
    old = TrainConfig(epochs=3).to_dict()
    del old["head_epochs"], old["grad_clip"], old["tensorboard"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    cfg = TrainConfig.load(path)
    assert cfg.epochs == 3 and cfg.head_epochs == 0 and cfg.tensorboard is True


def test_the_settings_page_lists_every_setting():
    from pathlib import Path

    from modelkit.config import schema
    from modelkit.config.declare import settings_table
    from modelkit.models.registry import documented_architectures

    readme = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    table = settings_table(schema(), {"arch": documented_architectures()})
    assert table in readme.read_text(encoding="utf-8")
    assert "efficientnet_lite2 (with its optional wheel)" in table  # installed here or not
