"""Fine-tuning on cached outputs of the frozen stages (``cache_frozen_stages``).

The frozen stages (``frozen_stages``, their BatchNorm statistics kept) compute the same maps for
the same view of an image every epoch. With this on they run once per view: the evaluation
splits' views (the centre crop, and the test-time views), and for training a few fixed passes:
the centre crop, its mirror image when flips are on, then random augmented views up to
``feature_passes``; epoch e trains on pass e % passes, each computed when first needed. The rest
of the network trains on the maps. Fresh augmentation every epoch is what this gives up, which
is why it is a choice: on a CPU budget too short for whole fine-tuning epochs it is the
fine-tuning that fits (``models/split.py`` has the numbers). A two-phase run computes the maps
before its head-only phase, whose features then come from them (``head_features``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from modelkit.data.augment import AugmentSettings, eval_views
from modelkit.device import autocast, inference_batch
from modelkit.events import CacheProgress, Message
from modelkit.models import registry as models
from modelkit.models.folding import folded_copy
from modelkit.models.split import check_split, split_model
from modelkit.progress import Step, pass_name
from modelkit.training.errors import StopTraining, TrainingError
from modelkit.training.features import CachedFeatures, pass_view
from modelkit.training.view import TrainerView as Trainer  # not callbacks: they import inputs

# the maps are kept at the precision the network computes in: bf16 or fp16 halves the memory
MAPS_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}


def wanted(trainer: Trainer) -> bool:
    """Whether this stretch of the run uses cached maps: fine-tuning with frozen stages, on one
    process without compile; also the head-only phase before it when that phase caches its
    features, which then come from the maps (``head_features``)."""
    cfg = trainer.config
    return bool(
        cfg.cache_frozen_stages
        and cfg.frozen_stages
        and not cfg.freeze_backbone
        and (trainer.phase != 1 or cfg.feature_cache)
        and not cfg.compile
        and not trainer.dist.enabled
    )


@torch.no_grad()
def _maps(
    trainer: Trainer, prefix: torch.nn.Module, split: str, view: Callable, report
) -> torch.Tensor:
    """The prefix's maps of every image of ``split``; ``view(batch_u8)`` gives the views."""
    cfg, data = trainer.config, trainer.data
    rows, outs = data.rows[split], []
    dtype = MAPS_DTYPE.get(trainer.precision, torch.float32)
    step = inference_batch(trainer.device, max(cfg.batch_size, 64))
    for start in range(0, len(rows), step):
        if trainer.stop_event.is_set():
            raise StopTraining(trainer.state.epoch, 0)
        x = data.cache.batch(rows[start : start + step]).to(trainer.device, non_blocking=True)
        with autocast(trainer.device, trainer.precision):
            outs.append(torch.stack([prefix(v).to(dtype) for v in view(x)]))
        if report:
            report(len(x))
    return torch.cat(outs, 1)


def cache_stages(trainer: Trainer) -> CachedFeatures | None:
    """The frozen stages' maps for this run (or None when it does not use them): the
    evaluation splits' now, the training passes as the epochs need them."""
    if not wanted(trainer):
        return None
    cfg, data = trainer.config, trainer.data
    prefix, rest = split_model(trainer.model, cfg.arch, cfg.frozen_stages)
    if not check_split(trainer.model, prefix, rest):
        raise TrainingError(
            f"cache_frozen_stages: {cfg.arch}'s forward is not its layers in order, so the "
            "frozen stages' outputs cannot stand in for them; turn the setting off"
        )
    prefix = folded_copy(prefix).eval()  # frozen, statistics kept: BatchNorm folds in
    norm, cl = models.normalisation(cfg.arch), cfg.channels_last
    settings = AugmentSettings.from_config(cfg)
    generator = torch.Generator().manual_seed(cfg.seed + 2)
    eval_splits = [s for s in ("val", "test") if len(data.rows.get(s, []))]
    passes = max(1, cfg.feature_passes) if settings.augments else 1
    # the opening step: the evaluation splits and the first training pass; each later pass is a
    # step of its own, when the epoch that first needs it starts
    total = sum(len(data.rows[s]) for s in [*eval_splits, "train"])
    what = "Computing stage maps"
    opening = Step(trainer.emit, "frozen stages", pass_name(what, 0, passes), total,
                   kind=CacheProgress)  # fmt: skip
    size = cfg.eval_size or cfg.image_size

    def evaluation(split: str) -> torch.Tensor:
        return _maps(
            trainer, prefix, split, lambda x: eval_views(x, size, cl, norm, cfg.tta),
            opening.advance,
        )  # fmt: skip

    def train_pass(k: int, epoch: int) -> torch.Tensor:  # centre, mirror, then random views
        def view(x: torch.Tensor) -> list[torch.Tensor]:
            return [pass_view(x, k, cfg.image_size, settings, generator, cl, norm)]

        if opening.open:
            return _maps(trainer, prefix, "train", view, opening.advance)[0]
        n, name = len(data.rows["train"]), pass_name(what, k, passes)
        with Step(trainer.emit, "frozen stages", name, n, kind=CacheProgress) as step:
            return _maps(trainer, prefix, "train", view, step.advance)[0]

    first_epoch = cfg.head_epochs if trainer.phase else 0  # built for fine-tuning
    with opening:
        cache = CachedFeatures(
            {s: evaluation(s) for s in eval_splits}, passes, train_pass, first_epoch,
            trainer.spent_once,
        )  # fmt: skip
        first = cache.train_pass(0, trainer.state.epoch)  # the rest when an epoch needs them
    mb = (first.numel() * first.element_size() * passes) / 2**20
    trainer.emit(
        Message(
            f"fine-tuning after the first {cfg.frozen_stages} stages on their cached outputs: "
            f"{passes} pass{'es' if passes > 1 else ''} of {tuple(first.shape[1:])} maps a "
            f"training image (~{mb:.0f} MB), each computed once"
        )
    )
    return cache


@torch.no_grad()
def head_features(trainer: Trainer) -> CachedFeatures:
    """The head-only phase's features computed from the cached maps instead of the images: the
    frozen stages then run over every view once in the whole run, for the head and then for
    fine-tuning, not once for each (a run that paid for both:
    benchmarks/results/time_to_accuracy_caltech101_15m_auto_stage_maps_cpu2.json). The rest of
    the network is frozen in this phase too, so its folded copy gives the features the whole
    backbone would."""
    cfg, maps = trainer.config, trainer.stage_cache
    assert maps is not None
    body = folded_copy(rest_of(trainer.model, cfg.arch, cfg.frozen_stages).body).eval()
    step = inference_batch(trainer.device, max(cfg.batch_size, 64))

    # a step for what comes before the head's first epoch (the evaluation splits' features and
    # the first training pass's); it counts each split's images once, whatever its views
    total = sum(views.shape[1] for views in maps.splits.values()) + len(trainer.data.rows["train"])
    name = "Computing features for the head from the stage maps"
    opening = Step(trainer.emit, "head features", name, total, kind=CacheProgress)

    def pooled(views: torch.Tensor) -> torch.Tensor:  # V x N x C x H x W -> V x N x D, float
        out = []
        for i, v in enumerate(views):
            parts = []
            for start in range(0, len(v), step):
                batch = v[start : start + step]
                if cfg.channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                with autocast(trainer.device, trainer.precision):
                    parts.append(torch.flatten(body(batch), 1).float())
                if opening.open and i == len(views) - 1:
                    opening.advance(len(batch))
            out.append(torch.cat(parts))
        return torch.stack(out)

    with opening:
        features = CachedFeatures(
            {split: pooled(views) for split, views in maps.splits.items()},
            min(maps.passes, cfg.head_epochs),
            lambda k, epoch: pooled(maps.train_pass(k, epoch)[None])[0],
        )  # the maps' passes time themselves: computing one counts once
        features.train(trainer.state.epoch)
    trainer.emit(Message("the head trains on features computed from the cached maps"))
    return features


def rest_of(model: torch.nn.Module, arch: str, stages: int) -> torch.nn.Module:
    """The part of ``model`` (the live or the EMA weights) that runs on the cached maps."""
    return split_model(model, arch, stages)[1]


def gather(maps: torch.Tensor, idx: np.ndarray, channels_last: bool) -> torch.Tensor:
    """The maps of a batch, in the memory layout the convolutions want."""
    batch = maps[torch.from_numpy(idx).to(maps.device)]
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch
