"""What a run needs before its first batch: its splits, its run folder, the decoded images and
(frozen backbone) the cached features. The Trainer calls these; they are out of the loop so the
loop reads as the loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelkit.atomic import atomic_write_json
from modelkit.config import TrainConfig
from modelkit.data.augment import AugmentSettings
from modelkit.data.cache import ImageCache
from modelkit.data.file_list import read_file_list as read_list
from modelkit.data.imageio import resize_size_for
from modelkit.data.scan import DatasetError, Sample, scan_dataset
from modelkit.events import CacheProgress, Event, Message
from modelkit.models import registry as models
from modelkit.models import stages
from modelkit.progress import Step, pass_name
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.store import RunStore
from modelkit.training import kept_maps, stage_cache
from modelkit.training.callbacks.base import Trainer
from modelkit.training.errors import StopTraining, TrainingError, explain_error
from modelkit.training.features import (
    CachedFeatures,
    backbone_features,
    headless,
    pass_view,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_splits(
    cfg: TrainConfig, run_dir: Path | None
) -> tuple[list[str], dict[str, list[Sample]]]:
    """(classes, splits): a resumed run's saved ones, else a fresh scan of the data folder."""
    if run_dir is not None:
        folder = RunFolder(run_dir)
        classes, raw = read_json(folder.classes), read_json(folder.splits)
        if not isinstance(classes, list) or not isinstance(raw, dict):
            names = f"{folder.classes.name} or {folder.splits.name}"
            raise TrainingError(f"{run_dir}: {names} is unreadable")
        return classes, {s: [Sample(p, int(y)) for p, y in v] for s, v in raw.items()}
    if cfg.data_dir.endswith(".json") and Path(cfg.data_dir).is_file():
        return read_file_list(cfg.data_dir)
    index = scan_dataset(cfg.data_dir, cfg.val_ratio, cfg.test_ratio, cfg.seed)
    splits = {s: v for s, v in index.splits.items() if v}
    if len(index.classes) < 2:
        raise DatasetError(f"{cfg.data_dir}: need at least 2 classes to train a classifier")
    if not splits.get("train"):
        raise DatasetError(f"{cfg.data_dir}: no training images found")
    return index.classes, splits


def read_file_list(path: str) -> tuple[list[str], dict[str, list[Sample]]]:
    """(classes, splits) of a list-of-files data set (``modelkit.data.file_list``). Lets
    ``auto``'s race train on chosen training images with others held out, and a labelling
    folder train on pseudo-labelled images, without copying a single image."""
    classes, splits = read_list(path)
    return classes, {s: [Sample(p, y) for p, y in rows] for s, rows in splits.items()}


def create_run_folder(
    cfg: TrainConfig, classes: list[str], splits: dict[str, list[Sample]]
) -> Path:
    """A new folder in the runs dir with what a resume needs to see the same data."""
    try:  # an unwritable or full runs folder: one clear message, not a traceback
        run_dir = RunStore(cfg.runs_dir).create(cfg.arch, cfg.run_name)
        folder = RunFolder(run_dir)
        atomic_write_json(folder.config, cfg.to_dict())
        atomic_write_json(folder.classes, classes)
        atomic_write_json(
            folder.splits, {s: [[x.path, x.label] for x in v] for s, v in splits.items()}
        )
        sizes = {s: len(v) for s, v in splits.items()}
        atomic_write_json(folder.dataset, {"images": sum(sizes.values()), "splits": sizes})
    except OSError as exc:
        raise TrainingError(explain_error(exc)) from exc
    return run_dir


@dataclass
class Decoded:
    """The decoded images of every split: rows of the cache, labels and paths per split."""

    cache: ImageCache
    rows: dict[str, np.ndarray]
    labels: dict[str, torch.Tensor]
    paths: dict[str, list[str]]


def decode(
    cfg: TrainConfig,
    splits: dict[str, list[Sample]],
    emit: Callable[[Event], None],
    should_stop: Callable[[], bool],
) -> Decoded:
    """Decode every image once; unreadable files are skipped with a warning."""
    order = [(s, i) for s in splits for i in range(len(splits[s]))]
    with Step(emit, "decode", "Decoding images", len(order), kind=CacheProgress) as step:
        cache = ImageCache(
            [splits[s][i].path for s, i in order],
            resize_size_for(max(cfg.image_size, cfg.eval_size)),  # smaller: resized batches
            cfg.cache_ram_mb,
            progress=lambda done, total: step.advance(done - step.done),
            should_stop=should_stop,
        )
    if should_stop():
        raise StopTraining(0, 0)
    for path, reason in cache.errors:
        emit(Message(f"skipped {path}: {reason}", "warning"))
    rows: dict[str, np.ndarray] = {}
    labels: dict[str, torch.Tensor] = {}
    for split in splits:
        found = [k for k, (s, i) in enumerate(order) if s == split and cache.valid[k]]
        rows[split] = np.asarray(found, dtype=np.int64)
        labels[split] = torch.tensor([splits[split][order[k][1]].label for k in found])
    paths = {s: [cache.paths[k] for k in rows[s]] for s in splits}
    if len(rows["train"]) == 0:
        raise DatasetError("no readable training images (every file failed to decode)")
    return Decoded(cache, rows, labels, paths)


def cache_features(trainer: Trainer) -> CachedFeatures | None:
    """Frozen backbone: its features per image (per augmentation pass) computed once, or None.

    Also for the head-only phase of a two-phase run (dropped when phase 2 unfreezes the
    backbone): its head epochs then cost almost nothing instead of a forward pass each. The
    evaluation splits' features and the first epoch's pass are computed here; pass k of the
    training split when epoch k first needs it, so the first epoch ends after one pass, not all
    of them. The passes draw from their own generator, seeded from the config and always
    computed in order, so a resumed run recomputes exactly the features the interrupted one
    trained on."""
    cfg, data = trainer.config, trainer.data
    frozen = cfg.freeze_backbone or trainer.phase == 1
    if not (frozen and cfg.feature_cache) or cfg.compile or trainer.dist.enabled:
        return None
    if trainer.stage_cache is not None:  # the frozen stages' maps are cached: from them
        return stage_cache.head_features(trainer)
    settings = AugmentSettings.from_config(cfg)
    frozen_epochs = trainer.plan.epochs if cfg.freeze_backbone else cfg.head_epochs
    augmented = settings.augments
    passes = min(cfg.feature_passes, frozen_epochs) if augmented else 1
    eval_splits = [s for s in ("val", "test") if len(data.rows.get(s, []))]
    key = ""  # kept for auto's longer run of a head-only winner, which recomputed them (#26)
    if kept_maps.keeping():
        with headless(trainer.model, cfg.arch) as body:  # the backbone's weights, not the head's
            views = (settings, augmented and cfg.feature_passes, "backbone features")
            key = kept_maps.maps_key(trainer, body, views, eval_splits)
    reused, kept = False, kept_maps.take(key) if key else None
    if kept is not None:
        reused, generator = True, kept.generator
    else:
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        kept = kept_maps.KeptMaps({}, passes, [], generator)
    start = trainer.state.epoch
    # the opening step covers what comes before the first epoch: the eval splits and the passes
    # up to the one it trains on (one pass, unless resuming a later epoch); a later pass is a
    # step of its own, when the epoch that first needs it starts
    first = start % passes + 1
    total = first * len(data.rows["train"]) + sum(len(data.rows[s]) for s in eval_splits)
    what = "Computing features for the head"
    opening = Step(trainer.emit, "features", pass_name(what, 0, passes), total, kind=CacheProgress)

    def compute(split: str, view, epoch: int, report, tta: str = "") -> torch.Tensor:
        size = (cfg.eval_size or cfg.image_size) if tta else cfg.image_size
        feats = backbone_features(
            trainer.model, cfg.arch, data.cache, data.rows[split], size,
            trainer.device, trainer.precision, cfg.channels_last, max(cfg.batch_size, 64),
            view, trainer.stop_event.is_set, report, tta,
        )  # fmt: skip
        if feats is None:
            raise StopTraining(epoch, 0)
        return feats

    norm = models.normalisation(cfg.arch)

    def train_pass(k: int, epoch: int) -> torch.Tensor:  # centre, mirror, then random views
        def view(x: torch.Tensor) -> torch.Tensor:
            return pass_view(x, k, cfg.image_size, settings, generator, cfg.channels_last, norm)

        if opening.open:
            opening.rename(pass_name(what, k, passes))
            return compute("train", view, epoch, opening.advance)
        n = len(data.rows["train"])
        name = pass_name(what, k, passes)
        with Step(trainer.emit, "features", name, n, kind=CacheProgress) as step:
            return compute("train", view, epoch, step.advance)

    def spent(seconds: float) -> None:  # a pass: inside an epoch, and the features' cost
        trainer.spent_once(seconds)
        kept.spent(seconds)

    if reused:
        trainer.emit(
            Message(
                f"frozen backbone: the head trains on the features the run before computed "
                f"({len(kept.train_passes)} of {passes} augmentation passes)"
            )
        )
        return kept.reused_by(CachedFeatures(kept.splits, passes, train_pass, spent=spent))
    started = time.perf_counter()
    # the evaluation splits through the run's own evaluation views (TTA, FixRes size): what
    # split_logits would feed the backbone, computed once
    with opening:
        features = CachedFeatures(
            {split: compute(split, None, start, opening.advance, cfg.tta) for split in eval_splits},
            passes, train_pass, spent=spent,
        )  # fmt: skip
        features.train(start)  # before the first epoch, as the opening step
    kept.computed(key, features, time.perf_counter() - started)
    trainer.emit(
        Message(
            f"frozen backbone: features cached for {passes} augmentation pass"
            f"{'es' if passes > 1 else ''} (each computed once); the head trains on them"
        )
    )
    return features


def build_model(
    cfg: TrainConfig, n_classes: int, device: torch.device, resuming: bool
) -> tuple[torch.nn.Module, str]:
    """(model on ``device``, where its weights come from). Seeded first, so the head's random
    start is the same in every run of a config; a resumed run loads every weight from last.pt."""
    from modelkit.config.rules import head_problem

    # the data set's class count is known only now: a wide head over thousands of classes is
    # refused before it is built (a checkpoint of it would be refused by predict anyway)
    width = models.feature_width(cfg.arch)
    if problem := head_problem(cfg.head_hidden, cfg.head, width, n_classes):
        raise TrainingError(f"{problem} (the data set has {n_classes} classes)")
    seed_everything(cfg.seed)
    model = models.build_model(cfg.arch, n_classes, cfg.head, cfg.head_hidden, cfg.head_dropout)
    if resuming:
        source = "resumed from last.pt"
    else:
        source = models.load_starting_weights(model, cfg.arch, cfg.weights)
    try:
        stages.set_backbone_trainable(model, cfg.arch, not cfg.freeze_backbone, cfg.frozen_stages)
    except ValueError as exc:  # more frozen stages than the architecture has
        raise TrainingError(f"frozen_stages: {exc}") from exc
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, source
