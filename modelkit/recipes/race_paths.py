"""The paths ``auto``'s race can choose between, and what each costs on this machine.

Each path is a small set of TrainConfig settings laid over auto's own choice, complete enough
that the run it defines is the same whatever auto had chosen: the head alone on cached
features, the last stage fine-tuned on cached stage maps, the whole network fine-tuned at a
reduced size, a small network from scratch (tiny or grayscale images). Auto's own choice is a
path too, with no changes. The costs are rough, from the probe's measured seconds per image and
the registry's rates; they size each path's epochs in a race slice, not the race's verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelkit.recipes.choice import FEW_PER_CLASS
from modelkit.recipes.costs import MAP_PASSES, STAGE_MAP_EPOCH_S_PER_IMAGE, TRAIN_OVER_INFERENCE
from modelkit.recipes.facts import Facts
from modelkit.recipes.fine_tune import (
    FEW_FINETUNE_EPOCHS,
    HEAD_EPOCHS,
    HEAD_ONLY_EPOCHS,
    STAGE_MAP_EPOCHS,
)
from modelkit.recipes.presets import PRESETS
from modelkit.recipes.scratch import MAX_EPOCHS_IN_BUDGET, TINY_SIDE

LOAD_S = 2.0  # building a network and loading its weights, per race run
REDUCED = 0.7  # the reduced size of whole fine-tuning, as a share of the weights' own size
GPU_SPEEDUP = 10.0  # what a GPU does to the registry's CPU rates, where nothing was measured
# what an epoch costs beyond the network, whatever its size: batches made, augmented, validated
EPOCH_OVERHEAD_S, IMAGE_OVERHEAD_S = 0.3, 0.004
# the pretrained path's settings a from-scratch run must not keep
NOT_FROM_SCRATCH = dict(
    freeze_backbone=False, frozen_stages=0, cache_frozen_stages=False, freeze_bn=False,
    head_epochs=0, finetune_lr=None, backbone_lr=None, eval_size=0, warmup_epochs=0,
)  # fmt: skip


@dataclass
class RacePath:
    """One path: its name, the settings it changes, and what a race run of it costs."""

    name: str
    changes: dict[str, Any]
    about: str
    setup_s: float = 0.0  # before the first epoch: weights, decoding, cached passes
    epoch_s: float = 0.0  # one epoch of the race's training images and its held-out pass
    two_phase: bool = False  # the head trains alone first (its epochs are cheap)
    scores: list[float | None] = field(default_factory=list)  # held-out accuracy per round
    epochs: list[int] = field(default_factory=list)  # epochs trained per round
    seconds: list[float] = field(default_factory=list)  # seconds per round
    failed: str = ""

    def cost(self, epochs: int) -> float:
        return self.setup_s + epochs * self.epoch_s


def path_kind(settings: dict[str, Any]) -> str:
    """What kind of path ``settings`` take: scratch, maps, head or finetune."""
    if settings.get("weights", "imagenet") == "none":
        return "scratch"
    if settings.get("cache_frozen_stages"):
        return "maps"
    if settings.get("freeze_backbone"):
        return "head"
    return "finetune"


def candidate_paths(facts: Facts, settings: dict[str, Any], per_class: float) -> list[RacePath]:
    """Auto's own choice and the other paths the data allows, each once."""
    from modelkit.models.registry import ARCHITECTURES
    from modelkit.recipes.probe import installed_backbones

    arch = settings.get("arch") or facts.pretrained
    size = int(settings.get("image_size") or 224)
    few = per_class < FEW_PER_CLASS
    own = path_kind(settings)
    paths = [RacePath("auto's choice", {}, f"auto's own choice ({describe(own, settings)})")]
    if facts.pretrained and arch in ARCHITECTURES:
        if own != "head":
            head = dict(
                freeze_backbone=True, head_epochs=0, frozen_stages=0, cache_frozen_stages=False,
                epochs=HEAD_ONLY_EPOCHS, eval_size=0, monitor="val_acc", weights="imagenet",
            )  # fmt: skip
            paths.append(RacePath("head only", head, "the new head on cached frozen features"))
        maps = [(a, s) for a, s in installed_backbones() if ARCHITECTURES[a].stage_maps_frozen]
        if own != "maps" and maps:
            a, s = next(((a, s) for a, s in maps if a == arch), maps[-1])
            changes = dict(
                arch=a, image_size=s, weights="imagenet", freeze_backbone=False,
                frozen_stages=ARCHITECTURES[a].stage_maps_frozen, cache_frozen_stages=True,
                feature_passes=MAP_PASSES, head_epochs=STAGE_MAP_EPOCHS[0],
                epochs=sum(STAGE_MAP_EPOCHS), finetune_lr=1e-3, backbone_lr=1e-3, freeze_bn=True,
                eval_size=0, monitor="val_acc",
            )  # fmt: skip
            about = f"{a}'s last stage on cached maps"
            paths.append(RacePath("last stage on maps", changes, about))
        reduced = max(16 * round(REDUCED * ARCHITECTURES[arch].image_size / 16), 96)
        if own != "finetune" or size > reduced:
            paths.append(RacePath(f"fine-tune at {reduced} px", _finetune(reduced, few), ""))
            paths[-1].about = f"everything fine-tuned at {reduced} px"
    if (0 < facts.median_side <= TINY_SIDE or facts.grayscale) and own != "scratch":
        paths.append(_scratch(facts))
    return paths


def _finetune(size: int, few: bool) -> dict[str, Any]:
    base = dict(
        image_size=size, weights="imagenet", freeze_backbone=False, frozen_stages=0,
        cache_frozen_stages=False, eval_size=0,
    )  # fmt: skip
    if few:  # the head first, then everything gently (auto's measured few-images rates)
        return base | dict(
            head_epochs=HEAD_EPOCHS, epochs=HEAD_EPOCHS + FEW_FINETUNE_EPOCHS,
            finetune_lr=1e-4, backbone_lr=2e-5, freeze_bn=True,
        )  # fmt: skip
    return base | dict(head_epochs=0, epochs=MAX_EPOCHS_IN_BUDGET, backbone_lr=2e-4)


def _scratch(facts: Facts) -> RacePath:
    tiny = 0 < facts.median_side <= TINY_SIDE
    arch = "smallresnet" if tiny else "resnet18_half"
    size = (32 if facts.median_side <= 40 else 64) if tiny else 112
    preset = {k: v for k, v in PRESETS["from-scratch-small-images"].items() if k != "epochs"}
    changes = preset | NOT_FROM_SCRATCH | dict(arch=arch, image_size=size)
    changes |= dict(epochs=MAX_EPOCHS_IN_BUDGET, feature_passes=1)
    why = "tiny" if tiny else "grayscale"
    return RacePath(f"{arch} from scratch", changes, f"{arch} at {size} px ({why} images)")


def describe(kind: str, settings: dict[str, Any]) -> str:
    size = settings.get("image_size", 224)
    return {
        "scratch": f"{settings.get('arch')} from scratch at {size} px",
        "maps": f"{settings.get('arch')}'s last stages on cached maps",
        "head": f"the head on {settings.get('arch')}'s cached features",
        "finetune": f"{settings.get('arch')} fine-tuned at {size} px",
    }[kind]


def estimate(path: RacePath, facts: Facts, settings: dict[str, Any], n_train: int, n_held: int):
    """Fill ``path``'s setup and epoch seconds for a race on ``n_train`` + ``n_held`` images."""
    from modelkit.models.registry import ARCHITECTURES, cpu_rate_224

    run = {**settings, **path.changes}
    arch, size = run.get("arch") or facts.pretrained, int(run.get("image_size") or 224)
    rate = cpu_rate_224(arch) * (224 / size) ** 2 / facts.slowdown
    rate *= GPU_SPEEDUP if facts.gpu and not facts.seconds_per_image else 1.0
    forward = 1 / (TRAIN_OVER_INFERENCE * rate)  # seconds to embed one image
    if facts.seconds_per_image and facts.probe is not None and arch in ARCHITECTURES:
        won = facts.probe.winner
        won_size = ARCHITECTURES[won].image_size
        scale = cpu_rate_224(won) / cpu_rate_224(arch) * (size / won_size) ** 2
        forward = facts.seconds_per_image * scale
    kind = path_kind(run)
    path.two_phase = bool(run.get("head_epochs")) and kind != "head"
    images = n_train + n_held
    if kind == "head":  # one cached pass in a race run (race.race_config), then cheap epochs
        path.setup_s = LOAD_S + images * forward
        path.epoch_s = EPOCH_OVERHEAD_S * 0.1
    elif kind == "maps":
        path.setup_s = LOAD_S + images * forward
        path.epoch_s = images * STAGE_MAP_EPOCH_S_PER_IMAGE * facts.slowdown
    else:
        path.setup_s = LOAD_S + (images * forward if path.two_phase else 0.0)
        path.epoch_s = n_train * TRAIN_OVER_INFERENCE * forward + n_held * forward
        path.epoch_s += (EPOCH_OVERHEAD_S + images * IMAGE_OVERHEAD_S) * facts.slowdown
    return path
