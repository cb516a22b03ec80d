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

All passes are kept in memory, so their size is worked out from one image's maps before any is
computed and held to a budget (``map_budget``): a run asking 100 passes of 72 images at 512 px
said "~28800 MB" after computing the first and went on to gigabytes. The passes are lowered to
what fits, with a message; a run whose one pass does not fit is refused with what to change.
"""

from __future__ import annotations

import os
import time
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
from modelkit.training import kept_maps
from modelkit.training.errors import StopTraining, TrainingError
from modelkit.training.features import CachedFeatures, pass_view
from modelkit.training.view import TrainerView as Trainer  # not callbacks: they import inputs

# the maps are kept at the precision the network computes in: bf16 or fp16 halves the memory
MAPS_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Share of the memory available when the maps are planned (RAM, or the GPU's when the run keeps
# them there) that they may take: the model, its batches and the decode cache need the rest.
MEMORY_SHARE = 0.5


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
    eval_splits = [s for s in ("val", "test") if len(data.rows.get(s, []))]
    passes = max(1, cfg.feature_passes) if settings.augments else 1
    key = ""  # no run will look for these maps unless a caller keeps them: no key to compute
    if kept_maps.keeping():
        key = kept_maps.maps_key(trainer, prefix, (settings, passes), eval_splits)
    kept = kept_maps.take(key) if key else None
    if kept is not None:
        generator, passes = kept.generator, kept.passes
    else:
        generator = torch.Generator().manual_seed(cfg.seed + 2)
        passes = passes_that_fit(trainer, prefix, eval_splits, passes)
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
    reused, kept = kept is not None, kept or kept_maps.KeptMaps({}, passes, [], generator)

    def spent(seconds: float) -> None:  # a later pass: inside an epoch, and the maps' cost
        trainer.spent_once(seconds)
        kept.spent(seconds)

    if reused:
        cache = kept.reused_by(CachedFeatures(kept.splits, passes, train_pass, first_epoch, spent))
        trainer.emit(
            Message(
                f"fine-tuning after the first {cfg.frozen_stages} stages on the stage maps the "
                f"run before computed ({len(kept.train_passes)} of {passes} training passes)"
            )
        )
        return cache
    started = time.perf_counter()
    with opening:
        cache = CachedFeatures(
            {s: evaluation(s) for s in eval_splits}, passes, train_pass, first_epoch, spent
        )  # fmt: skip
        first = cache.train_pass(0, trainer.state.epoch)  # the rest when an epoch needs them
    kept.computed(key, cache, time.perf_counter() - started)
    mb = (first.numel() * first.element_size() * passes) / 2**20
    trainer.emit(
        Message(
            f"fine-tuning after the first {cfg.frozen_stages} stages on their cached outputs: "
            f"{passes} pass{'es' if passes > 1 else ''} of {tuple(first.shape[1:])} maps a "
            f"training image (~{mb:.0f} MB), each computed once"
        )
    )
    return cache


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new allocations where the maps are kept: the GPU's free memory, else RAM
    within this cgroup's limit when it sets one; None when neither can be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    found = [n for n in (_ram_available(), _cgroup_left()) if n is not None]
    return min(found) if found else None


def _ram_available() -> int | None:
    """RAM available: psutil's figure, /proc/meminfo's MemAvailable, or the free pages."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except (ImportError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo") as f:
            return int(next(x for x in f if x.startswith("MemAvailable:")).split()[1]) * 1024
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_left() -> int | None:
    """What a container's memory limit (cgroup v2) leaves, which machine-wide figures hide."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f, open("/sys/fs/cgroup/memory.current") as g:
            limit, used = f.read().strip(), g.read().strip()
        return None if limit == "max" else max(0, int(limit) - int(used))
    except (OSError, ValueError):
        return None


def map_budget(trainer: Trainer) -> tuple[int | None, str]:
    """(bytes the maps may take, where that bound comes from): MEMORY_SHARE of the available
    memory, and on the CPU also ``cache_ram_mb`` less what the decode cache holds in RAM (the
    setting is the RAM a run's caches may take; 0, decoded images on disk, leaves the share)."""
    cfg, found = trainer.config, []
    available = available_memory(trainer.device)
    if available is not None:
        share = int(available * MEMORY_SHARE)
        found.append((share, f"half the {available / 2**20:,.0f} MB of memory available"))
    if cfg.cache_ram_mb and trainer.device.type != "cuda":
        cache = trainer.data.cache
        decoded = 0 if getattr(cache, "on_disk", True) else int(cache.nbytes)
        left = max(0, cfg.cache_ram_mb * 2**20 - decoded)
        found.append((left, f"cache_ram_mb {cfg.cache_ram_mb} less {decoded / 2**20:,.0f} MB of "
                            "decoded images"))  # fmt: skip
    return min(found) if found else (None, "")


@torch.no_grad()
def passes_that_fit(
    trainer: Trainer, prefix: torch.nn.Module, eval_splits: list[str], passes: int
) -> int:
    """``passes``, or fewer when the maps of that many do not fit ``map_budget`` (said in a
    Message); TrainingError when the evaluation views and one pass do not. One blank image
    through the frozen stages gives the maps' size an image, before any pass is computed."""
    cfg, data, device = trainer.config, trainer.data, trainer.device
    dtype = MAPS_DTYPE.get(trainer.precision, torch.float32)
    width = torch.empty((), dtype=dtype).element_size()
    norm, cl = models.normalisation(cfg.arch), cfg.channels_last
    blank = torch.zeros(1, 8, 8, 3, dtype=torch.uint8, device=device)  # as the cache gives

    def per_image(views: list[torch.Tensor]) -> int:
        return sum(prefix(v).numel() for v in views) * width

    views = eval_views(blank, cfg.eval_size or cfg.image_size, cl, norm, cfg.tta)
    evaluation = per_image(views) * sum(len(data.rows[s]) for s in eval_splits)
    one_pass = per_image(eval_views(blank, cfg.image_size, cl, norm)[:1]) * len(data.rows["train"])
    budget, why = map_budget(trainer)
    if budget is None or evaluation + passes * one_pass <= budget:
        return passes
    fit = (budget - evaluation) // one_pass if one_pass else passes
    mb = 2**20
    if fit < 1:
        raise TrainingError(
            f"cache_frozen_stages: the frozen stages' maps of {len(data.rows['train'])} training "
            f"images at {cfg.image_size} px take ~{one_pass / mb:,.0f} MB a pass, plus "
            f"~{evaluation / mb:,.0f} MB for the evaluation views: more than the "
            f"{budget / mb:,.0f} MB they may use ({why}). Lower image_size, freeze more stages "
            "(frozen_stages), raise cache_ram_mb, or turn cache_frozen_stages off"
        )
    trainer.emit(
        Message(
            f"cache_frozen_stages: {passes} passes of the frozen stages' maps would take "
            f"~{(evaluation + passes * one_pass) / mb:,.0f} MB, more than the {budget / mb:,.0f} "
            f"MB they may use ({why}); caching {fit} pass{'es' if fit > 1 else ''} instead"
        )
    )
    return int(fit)


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
