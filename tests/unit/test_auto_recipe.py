"""The auto recipe: what it chooses for a small or a large folder, imbalanced classes, with or
without ImageNet weights, with or without a time budget; its reasons reach the CLI and the run's
log; issue #13's techniques are used only where TrainConfig has them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelkit.cli.main import main
from modelkit.config import TrainConfig, schema
from modelkit.models import efficientnet_lite as lite
from modelkit.models.registry import ARCHITECTURES
from modelkit.recipes import NAMES, PRESETS, auto, resolve_settings
from modelkit.recipes.auto import Facts, choose, gather_facts, scratch_epochs
from modelkit.recipes.techniques import TECHNIQUES

BALANCED = {"a": 100, "b": 100}
CALTECH_LIKE = dict(images=7315, classes=102, per_class={str(i): 72 for i in range(102)})


def facts(**changes) -> Facts:
    base = Facts(
        images=200, classes=2, per_class=BALANCED, median_side=300,
        pretrained="efficientnet_lite0", gpu=False,
    )  # fmt: skip
    return replace(base, **changes)


def test_few_images_with_weights_train_the_head_first_then_fine_tune():
    chosen = choose(facts())
    s = chosen.settings
    assert s["arch"] == "efficientnet_lite0" and s["weights"] == "imagenet"
    assert s["head_epochs"] > 0 and s["backbone_lr"] < s["lr"]
    assert s["image_size"] == 224
    assert s["freeze_bn"] is True  # pretrained BatchNorm statistics kept while fine-tuning
    TrainConfig(data_dir="x", **s)  # a valid config
    assert any("head" in line and "frozen backbone" in line for line in chosen.lines())


@pytest.mark.parametrize("budget", [0.0, 120.0, 900.0])
def test_few_images_fine_tune_briefly_whatever_the_budget(budget):
    # hymenoptera-like (2 x 122) and Caltech-like (102 classes, ~72 a class)
    for f in (
        facts(images=244, per_class={"a": 122, "b": 122}),
        facts(images=7315, classes=102, per_class={str(i): 72 for i in range(102)}),
    ):
        s = choose(replace(f, time_budget=budget)).settings
        if s.get("cache_frozen_stages"):  # on cached maps of the frozen stages: cheap epochs
            assert s["epochs"] - s["head_epochs"] == auto.STAGE_MAP_EPOCHS[1]
        else:
            assert s["epochs"] - s["head_epochs"] == auto.FEW_FINETUNE_EPOCHS
        TrainConfig(data_dir="x", **s)  # a valid config: fine-tuning epochs after the head's


def test_a_cpu_budget_that_leaves_mostly_the_head_takes_the_backbone_with_better_features(
    monkeypatch,
):
    """Caltech-101 on a 2-core CPU in 5 minutes: fine-tuning Lite0 does not fit, the head on
    frozen features is the run, and Lite1's features are the better ones (93.2% against 92.5%);
    hymenoptera in 2 minutes fine-tunes Lite0 as before."""
    head_only = choose(facts(**CALTECH_LIKE, time_budget=300.0))
    assert head_only.settings["arch"] == "efficientnet_lite1"
    assert head_only.settings["image_size"] == 240
    assert any("arch = efficientnet_lite1" in line and "head" in line for line in head_only.lines())
    TrainConfig(data_dir="x", **head_only.settings)  # a valid config here
    fine_tunes = choose(facts(images=244, per_class={"a": 122, "b": 122}, time_budget=120.0))
    assert fine_tunes.settings["arch"] == "efficientnet_lite0"
    on_gpu = choose(facts(**CALTECH_LIKE, time_budget=300.0, gpu=True))
    assert on_gpu.settings["arch"] == "efficientnet_lite0"
    chosen = choose(facts(**CALTECH_LIKE, time_budget=300.0), {"arch": "efficientnet_lite0"})
    assert "arch" not in chosen.settings and chosen.settings["image_size"] == 224
    monkeypatch.setattr(lite, "installed", lambda name: False)  # without Lite1's package
    assert choose(facts(**CALTECH_LIKE, time_budget=300.0)).settings["arch"] == "efficientnet_lite0"


def test_a_cpu_budget_with_room_after_the_head_fine_tunes_the_last_stage_on_cached_maps():
    """Caltech-101 in 15 or 5 minutes on a CPU: after Lite1's head there is time to fine-tune
    its last stage on cached maps of the frozen ones (0.952 and 0.950 against 0.930 for the
    head alone); in 3 minutes, or with four times the images in 5, the head is the run."""
    chosen = choose(facts(**CALTECH_LIKE, time_budget=900.0))
    s = chosen.settings
    assert s["arch"] == "efficientnet_lite1" and s["image_size"] == 240
    assert s["frozen_stages"] == 7 and s["cache_frozen_stages"] is True
    assert s["feature_passes"] == 2  # the centre crop and its mirror image
    assert s["head_epochs"] == 10 and s["epochs"] == 22
    assert s["backbone_lr"] > 2e-5 and "eval_size" not in s  # no FixRes on centre-crop maps
    assert s["monitor"] == "val_acc"  # the loss kept a head-only epoch over better fine-tuning
    assert any("frozen_stages = 7" in line and "last stage" in line for line in chosen.lines())
    TrainConfig(data_dir="x", **s)  # a valid config
    assert choose(facts(**CALTECH_LIKE, time_budget=300.0)).settings["cache_frozen_stages"]
    short = choose(facts(**CALTECH_LIKE, time_budget=180.0)).settings
    assert "cache_frozen_stages" not in short and short["feature_passes"] == 1
    bigger = dict(CALTECH_LIKE, images=4 * 7315)
    assert "cache_frozen_stages" not in choose(facts(**bigger, time_budget=300.0)).settings
    asked = choose(facts(**CALTECH_LIKE, time_budget=900.0), {"frozen_stages": 5}).settings
    assert "cache_frozen_stages" not in asked  # the person's own freezing is left alone


def test_thousands_of_images_cache_one_feature_pass_for_the_head():
    """Each cached augmentation pass is a backbone pass over every training image: worth it for
    a few hundred images, not for thousands (Caltech-101: the same head in a third of the time)."""
    small = choose(facts(images=244, per_class={"a": 122, "b": 122})).settings
    large = choose(facts(**CALTECH_LIKE))
    assert "feature_passes" not in small  # the config's default: several passes
    assert large.settings["feature_passes"] == 1
    assert any("one cached pass" in line for line in large.lines())


def test_a_budget_too_short_for_full_fine_tuning_freezes_early_stages_before_shrinking(
    monkeypatch,
):
    # without Lite1's package (with it, such budgets take Lite1's head: the test above)
    monkeypatch.setattr(lite, "installed", lambda name: False)
    caltech = facts(**CALTECH_LIKE)
    fits = choose(replace(caltech, time_budget=3600)).settings
    assert "frozen_stages" not in fits and fits["image_size"] == 224
    short = choose(replace(caltech, time_budget=900))
    assert (
        short.settings["frozen_stages"] == ARCHITECTURES["efficientnet_lite0"].partial_frozen_stages
    )
    assert short.settings["image_size"] == 224
    assert any("frozen_stages" in line and "twice as many" in line for line in short.lines())
    # too tight for even that: still 224 px, where the head on cached features does most of
    # the work (the run's time budget skips fine-tuning epochs that cannot end in time)
    tight = choose(replace(caltech, time_budget=300)).settings
    assert tight["image_size"] == 224
    assert "frozen_stages" not in choose(replace(caltech, time_budget=900, gpu=True)).settings


def test_head_epochs_given_explicitly_still_leave_the_fine_tuning_epochs():
    chosen = choose(facts(), {"head_epochs": 8})
    assert chosen.settings["epochs"] == 8 + auto.FEW_FINETUNE_EPOCHS
    TrainConfig(data_dir="x", head_epochs=8, **chosen.settings)


def test_only_measured_architectures_freeze_stages_others_shrink_the_images():
    large = facts(images=20000, classes=20, per_class={str(i): 1000 for i in range(20)})
    # full fine-tuning at 224 px fits ~3.4 epochs (Lite0) and ~3 (ResNet-18) of the 6 wanted
    lite0 = choose(replace(large, time_budget=5000)).settings
    assert lite0["frozen_stages"] == ARCHITECTURES["efficientnet_lite0"].partial_frozen_stages
    resnet = choose(replace(large, pretrained="resnet18", time_budget=2000)).settings
    assert "frozen_stages" not in resnet and resnet["image_size"] < 224


def test_a_gpu_budget_does_not_turn_mixup_on_for_a_short_run():
    big = facts(pretrained="", images=100000, per_class={"a": 50000, "b": 50000}, gpu=True)
    chosen = choose(replace(big, time_budget=600)).settings
    assert chosen["epochs"] == auto.MAX_EPOCHS_IN_BUDGET
    assert "mixup_alpha" not in chosen  # ~2000 steps are 8 epochs here, not 60


def test_a_trained_head_needs_no_warmup_before_fine_tuning():
    assert choose(facts()).settings["warmup_epochs"] == 0  # few images a class: head first
    large = choose(facts(images=20000, per_class={"a": 10000, "b": 10000})).settings
    assert large["warmup_epochs"] == 1  # a new head fine-tuned with everything at once
    given = choose(facts(images=20000, per_class={"a": 10000, "b": 10000}), {"head_epochs": 3})
    assert given.settings["warmup_epochs"] == 0  # the person asked for the head first


def test_with_a_budget_the_epochs_are_an_upper_bound_the_budget_cuts():
    many = facts(images=20000, per_class={"a": 10000, "b": 10000})
    assert (
        choose(replace(many, time_budget=600)).settings["epochs"] > choose(many).settings["epochs"]
    )
    scratch = facts(pretrained="", images=8000, per_class={"a": 4000, "b": 4000}, time_budget=900)
    chosen = choose(scratch)
    assert chosen.settings["epochs"] == auto.MAX_EPOCHS_IN_BUDGET
    assert any("budget decides" in line for line in chosen.lines())


def test_a_large_folder_fine_tunes_everything_from_the_start():
    s = choose(facts(images=20000, per_class={"a": 10000, "b": 10000})).settings
    assert "head_epochs" not in s and s["backbone_lr"] < s["lr"]
    assert s["epochs"] < choose(facts()).settings["epochs"]  # many steps an epoch already


def test_without_weights_it_trains_from_scratch_small_and_fast():
    s = choose(facts(pretrained="", images=8000, per_class={"a": 4000, "b": 4000})).settings
    assert s["weights"] == "none" and s["arch"] == "resnet18" and s["image_size"] == 112
    assert s["scheduler"] == "onecycle" and s["optimizer"] == "sgd" and s["label_smoothing"] > 0
    thumbnails = choose(facts(pretrained="", median_side=32)).settings
    assert thumbnails["arch"] == "smallresnet" and thumbnails["image_size"] == 32


def test_a_cpu_budget_from_scratch_trains_resnet18_at_half_width_for_more_epochs():
    """Caltech-101 from scratch, 15 minutes on the 2-core CPU: ResNet-18 at half width fits 44
    epochs and reached 0.751, ResNet-18 13 epochs and 0.660. A GPU, or a run without a budget,
    keeps ResNet-18."""
    caltech = facts(pretrained="", **CALTECH_LIKE, time_budget=900)
    chosen = choose(caltech)
    assert chosen.settings["arch"] == "resnet18_half" and chosen.settings["image_size"] == 112
    assert any("half width" in line and "epochs" in line for line in chosen.lines())
    assert auto.expected_epochs(chosen, caltech, {}) > 30  # the epochs it is chosen for
    assert choose(replace(caltech, gpu=True)).settings["arch"] == "resnet18"
    assert choose(replace(caltech, time_budget=0.0)).settings["arch"] == "resnet18"
    picked = choose(caltech, {"arch": "resnet18"})  # a person's choice stands
    assert "arch" not in picked.settings
    TrainConfig(data_dir="x", **chosen.settings)  # a valid config


def test_a_head_trained_on_random_crops_is_evaluated_larger_fixres():
    """Few hundred images: the head's cached passes and the fine-tuning see random crops, whose
    objects look larger than in a centre crop at the training size, so evaluation (and the
    Predictor, which reads the run's size) is at 9/7 of it (hymenoptera: 0.959 at 288 against
    0.950 at 224 over five seeds). Thousands of images cache the centre crop alone: no change."""
    hymenoptera = choose(facts(images=244, per_class={"a": 122, "b": 122}))
    s = hymenoptera.settings
    assert s["image_size"] == 224 and s["eval_size"] == 288
    assert any("eval_size = 288" in line and "FixRes" in line for line in hymenoptera.lines())
    TrainConfig(data_dir="x", **s)  # a valid config
    assert "eval_size" not in choose(facts(**CALTECH_LIKE)).settings  # one centre-crop pass
    given = choose(facts(images=244, per_class={"a": 122, "b": 122}), {"image_size": 160})
    assert given.settings["eval_size"] == 208  # 9/7 of the size the person chose
    assert "eval_size" not in choose(facts(images=244), {"eval_size": 224}).settings
    maps = {"frozen_stages": 7, "cache_frozen_stages": True, "feature_passes": 2}
    assert "eval_size" not in choose(facts(images=244), maps).settings  # centre crop and mirror
    assert "eval_size" not in choose(facts(images=244, pretrained="")).settings  # from scratch


def test_progressive_resizing_only_where_small_images_are_cheap_enough_to_pay_for_it():
    """Caltech-101 from scratch in 15 minutes on a CPU: the whole run at 112 px, evaluated at
    that size, beat growing from 64 px and evaluating larger (FixRes): on a CPU a small image's
    step costs far more than its share of the area. A GPU run of 40 epochs (2,000 images, no
    budget) grows its images; the same run on a CPU does not."""
    caltech = facts(pretrained="", **CALTECH_LIKE)
    short = choose(replace(caltech, time_budget=900)).settings
    assert "progressive_resize" not in short and "eval_size" not in short
    assert short["scheduler"] == "onecycle" and "warmup_epochs" not in short  # its own rise
    long = choose(replace(caltech, images=2000, gpu=True)).settings
    assert long["epochs"] == 40
    assert long["progressive_resize"] is True and long["eval_size"] == long["image_size"] + 16
    assert long["progressive_min_size"] < long["image_size"]
    on_cpu = choose(replace(caltech, images=2000)).settings
    assert on_cpu["epochs"] == 40 and "progressive_resize" not in on_cpu


def test_tiny_images_on_a_cpu_train_a_small_network_even_with_weights_at_hand():
    chosen = choose(facts(median_side=64))
    assert chosen.settings["weights"] == "none" and chosen.settings["arch"] == "smallresnet"
    assert any("tiny" in line for line in chosen.lines())
    assert choose(facts(median_side=64, gpu=True)).settings["weights"] == "imagenet"


def test_tiny_images_whose_upscaled_features_were_measured_start_from_imagenet_weights():
    from modelkit.recipes.probe import Candidate, ProbeReport

    probe = ProbeReport(
        [Candidate("efficientnet_lite0", 224, 0.81, 30.0, "", 0.01)], 600, 4,
        "efficientnet_lite0", "measured best", 30.0,
    )  # fmt: skip
    chosen = choose(facts(median_side=32, time_budget=300.0, probe=probe))
    assert chosen.settings.get("weights", "imagenet") == "imagenet"
    assert chosen.settings["arch"].startswith("efficientnet_lite")
    assert any("tiny (~32 px)" in line and "0.810 held out" in line for line in chosen.lines())
    # where one look at them upscaled would not fit the budget, a small network from scratch
    slow = replace(probe, candidates=[Candidate("efficientnet_lite0", 224, 0.81, 30.0, "", 2.0)])
    chosen = choose(facts(median_side=32, time_budget=300.0, probe=slow))
    assert chosen.settings["weights"] == "none" and chosen.settings["arch"] == "smallresnet"


def test_imbalanced_classes_are_noticed_and_said():
    chosen = choose(facts(per_class={"a": 190, "b": 10}))
    assert chosen.settings["monitor"] == "val_loss"
    assert any("19.0x the smallest" in line for line in chosen.lines())
    balanced = choose(facts())
    assert balanced.settings.get("monitor", "val_loss") == "val_loss"
    assert not any("smallest" in line for line in balanced.lines())


def test_a_tight_budget_on_a_cpu_trains_smaller_images_and_says_why():
    free = choose(facts(images=2000, per_class={"a": 1000, "b": 1000}))
    tight = choose(facts(images=2000, per_class={"a": 1000, "b": 1000}, time_budget=120))
    assert free.settings["image_size"] == 224 and tight.settings["image_size"] < 224
    assert any("budget" in line for line in tight.lines())
    assert not any("budget" in line for line in free.lines())
    on_gpu = choose(facts(images=2000, per_class={"a": 1000, "b": 1000}, time_budget=120, gpu=True))
    assert on_gpu.settings["image_size"] == 224


def test_settings_given_explicitly_are_not_chosen_and_not_explained():
    chosen = choose(facts(), {"lr": 0.5})
    assert "lr" not in chosen.settings
    assert not any(line.startswith("auto: lr =") for line in chosen.lines())


def test_lines_for_a_config_leave_out_choices_the_person_changed():
    chosen = choose(facts())
    config = TrainConfig(data_dir="x", **{**chosen.settings, "epochs": 9})
    assert not any(line.startswith("auto: epochs =") for line in chosen.lines(config))
    assert any(line.startswith("auto: arch =") for line in chosen.lines(config))


def test_the_technique_table_names_only_known_fields():
    # the recipe sets a technique only where TrainConfig has the field: a name that is not one
    # (a typo, a renamed field) would be dropped without a word
    known = {s.name for s in schema()}
    for situation, table in TECHNIQUES.items():
        assert set(table) <= known, situation
    # ... and the ones ``recipes.auto._techniques`` adds by situation, outside the table
    assert {"warmup_epochs", "class_balance", "eval_size", "progressive_min_size"} <= known


def test_techniques_are_used_the_moment_trainconfig_has_them(monkeypatch):
    present = {s.name for s in schema()}
    plain = choose(facts(pretrained=""))
    assert set(plain.settings) <= present

    # a TrainConfig without mixup_alpha: the recipe leaves it out; with ema and tta it sets them
    monkeypatch.setattr(
        auto, "schema", lambda: tuple(s for s in schema() if s.name != "mixup_alpha")
    )
    chosen = choose(facts(pretrained=""))
    assert chosen.settings["ema"] is True and chosen.settings["tta"] == "flip"
    assert "mixup_alpha" not in chosen.settings  # not a field (here): not set
    assert any(line.startswith("auto: ema = True") for line in chosen.lines())


def test_facts_come_from_the_folder(make_dataset):
    data = make_dataset(per_class=10, size=(40, 48))
    found = gather_facts(str(data), {"weights": "none"}, probe_network=False, gpu=False)
    assert found.classes == 3 and found.images == 24
    assert sum(found.per_class.values()) == 24
    assert found.median_side == 40 and found.pretrained == ""


def test_auto_is_a_recipe_name_and_needs_the_dataset():
    assert NAMES[0] == "auto" and set(PRESETS) <= set(NAMES)
    assert {"few-images", "from-scratch-small-images", "fine-tune-large"} <= set(PRESETS)
    with pytest.raises(auto.AutoRecipeError, match="needs the dataset folder"):
        resolve_settings("auto", {}, probe_network=False)


def test_the_cli_says_why_and_the_run_log_keeps_it(capsys, image_dataset, tmp_path):
    fast = ["--weights", "none", "--epochs", "1", "--image-size", "32", "--batch-size", "8"]
    fast += ["--precision", "fp32", "--device", "cpu", "--runs-dir", str(tmp_path / "runs")]
    code = main(["train", str(image_dataset), "--recipe", "auto", *fast])
    out, err = capsys.readouterr()
    assert code == 0, err
    # 40 px images, no weights; said once (the run's log reaches the terminal too)
    assert err.count("auto: arch = smallresnet") == 1, err
    log = (tmp_path / "runs").glob("*/log.txt").__next__().read_text(encoding="utf-8")
    assert "auto: arch = smallresnet" in log
    assert "auto: epochs" not in log  # given on the command line, not chosen


# -- epochs counted in the steps of the batch the run uses ----------------------------------------
@pytest.mark.parametrize("gpu", [False, True])
def test_fine_tuning_epochs_count_steps_of_the_chosen_batch(gpu):
    """~600 optimizer steps: on a GPU (batch 64) 2,000 images are 32 steps an epoch, not the 63
    of batch 32 the count once assumed, so the run gets 19 epochs, not 10."""
    many = facts(images=2000, per_class={"a": 1000, "b": 1000}, gpu=gpu)
    s = choose(many).settings
    steps = -(-2000 // s["batch_size"])
    assert s["batch_size"] == (64 if gpu else 32)
    assert s["epochs"] == min(max(-(-600 // steps), 4), 20) == (19 if gpu else 10)
    # a batch the person gives is the one counted
    assert choose(many, {"batch_size": 100}).settings["epochs"] == 20


@pytest.mark.parametrize(("gpu", "batch", "epochs"), [(False, 64, 26), (True, 128, 40)])
def test_from_scratch_epochs_count_steps_of_the_chosen_batch(gpu, batch, epochs):
    """~2,000 steps from random weights: batch 128 on a GPU makes 40 steps an epoch of 5,000
    images, so 40 epochs (counted at batch 64 it was 26)."""
    big = facts(pretrained="", images=5000, per_class={"a": 2500, "b": 2500}, gpu=gpu)
    s = choose(big).settings
    assert s["batch_size"] == batch
    assert s["epochs"] == scratch_epochs(-(-5000 // batch)) == epochs


def test_auto_picks_the_same_settings_as_before_on_the_benchmark_shapes():
    """Pinned: hymenoptera-like and Caltech-101-like data with a budget on a CPU."""
    hymenoptera = facts(images=244, per_class={"ants": 123, "bees": 121}, time_budget=120.0)
    s = choose(hymenoptera).settings
    assert (s["arch"], s["image_size"], s["batch_size"]) == ("efficientnet_lite0", 224, 32)
    assert (s["epochs"], s["head_epochs"]) == (7, 5)
    caltech = choose(facts(**CALTECH_LIKE, time_budget=900.0)).settings
    assert (caltech["arch"], caltech["image_size"]) == ("efficientnet_lite1", 240)
    assert (caltech["epochs"], caltech["head_epochs"], caltech["frozen_stages"]) == (22, 10, 7)
    assert caltech["cache_frozen_stages"] is True and caltech["monitor"] == "val_acc"


# -- an architecture's facts live with it in the registry -----------------------------------------
def test_every_architecture_declares_what_auto_plans_a_cpu_budget_with():
    assert all(spec.cpu_rate_224 for spec in ARCHITECTURES.values())


def test_an_architecture_without_a_cpu_rate_gets_a_clear_error_not_a_guess(monkeypatch):
    from modelkit.models import registry

    bare = replace(ARCHITECTURES["resnet18"], name="newnet", cpu_rate_224=None)
    monkeypatch.setitem(registry.ARCHITECTURES, "newnet", bare)
    planned = auto.AutoRecipe({"arch": "newnet", "epochs": 60})
    with pytest.raises(registry.ArchitectureError, match="newnet declares no CPU training rate"):
        auto.expected_epochs(planned, facts(time_budget=60.0), {})
    with pytest.raises(registry.ArchitectureError, match="'nonet' is not one of"):
        registry.cpu_rate_224("nonet")


# -- auto starts from a fixed recipe and changes what it has a reason to change -------------------
@pytest.mark.parametrize(
    "situation, start",
    [
        (dict(), "few-images"),
        (dict(images=20000, per_class={"a": 10000, "b": 10000}), "fine-tune-large"),
        (dict(pretrained=""), "from-scratch-small-images"),
        (dict(median_side=32), "from-scratch-small-images"),  # tiny images on a CPU
    ],
)
def test_auto_starts_from_the_preset_for_the_situation(situation, start):
    chosen = choose(facts(**situation))
    assert chosen.start == start
    assert chosen.lines()[0].startswith(f"auto: started from the {start} recipe")
    changed = {name for name, _, _ in chosen.reasons if name}
    kept = {k: v for k, v in PRESETS[start].items() if k not in changed}
    assert kept and all(chosen.settings[k] == v for k, v in kept.items())


def test_preset_values_auto_drops_go_back_to_the_defaults_with_a_reason():
    chosen = choose(facts())  # few-images: its rotation, zoom and early stopping are not kept
    defaults = {s.name: s.default for s in schema()}
    for name in ("rotation", "zoom", "head_dropout", "early_stopping_patience"):
        assert chosen.settings[name] == defaults[name]
        assert any(line.startswith(f"auto: {name} = ") for line in chosen.lines())


def test_every_picker_of_auto_is_short():
    import ast
    import inspect

    from modelkit.recipes import choice, fine_tune, scratch

    for module in (auto, choice, fine_tune, scratch):
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno < 42, f"{module.__name__}.{node.name}"


@pytest.mark.parametrize(
    "given", [{"freeze_backbone": True}, {"epochs": 1}, {"epochs": 3}], ids=str
)
def test_what_the_person_gave_never_makes_auto_s_choice_contradict_itself(given):
    """A frozen backbone rules out a fine-tuning phase and stage maps; epochs given leave the
    head at most all but one of them: auto's settings with the person's make a valid run."""
    for situation in (facts(), facts(**CALTECH_LIKE, time_budget=300.0)):
        settings = {**choose(situation, given).settings, **given}
        TrainConfig(data_dir="x", **settings)  # raises ConfigError on a contradiction
        if given.get("freeze_backbone"):
            assert settings.get("head_epochs", 0) == 0 and not settings.get("cache_frozen_stages")


def _caltech_like(seconds_per_image: float, budget: float) -> Facts:
    """Caltech-101 as the suite has it (16 training images a class, 408 val, 816 test) with a
    probe that measured Lite0 at ``seconds_per_image``."""
    from modelkit.recipes.probe import Candidate, ProbeReport

    won = Candidate("efficientnet_lite0", 224, 0.83, 9.0, "", seconds_per_image)
    probe = ProbeReport([won], 476, 4, "efficientnet_lite0", "measured best", 9.0)
    per_class = {f"c{i}": 16 for i in range(102)}
    return facts(
        images=1632, classes=102, per_class=per_class, time_budget=budget, probe=probe,
        val_images=408, test_images=816,
    )  # fmt: skip


def test_where_measured_costs_leave_no_fine_tuning_after_the_head_the_head_trains_alone():
    # a slow CPU (11 ms an image) and 111 s: the head's pass and the final evaluation leave
    # about one fine-tuning epoch, which would be stopped unfinished
    slow = choose(_caltech_like(0.011, 111.0))
    s = slow.settings
    assert s["freeze_backbone"] is True and s["head_epochs"] == 0 and s["epochs"] >= 20
    assert any("fine-tuning fit the 111 s left" in line for line in slow.lines())
    TrainConfig(data_dir="x", **s)
    # a faster machine, or a longer budget, fine-tunes after the head as before
    for fast in (choose(_caltech_like(0.004, 111.0)), choose(_caltech_like(0.011, 400.0))):
        assert not fast.settings.get("freeze_backbone") and fast.settings["head_epochs"] > 0
    # a person who chose the phases keeps them
    kept = choose(_caltech_like(0.011, 111.0), {"head_epochs": 3})
    assert not kept.settings.get("freeze_backbone")
