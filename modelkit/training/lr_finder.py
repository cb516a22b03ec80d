"""Learning-rate range test (Leslie Smith; fastai's ``lr_find``).

Train for a short while with the learning rate growing exponentially from ``start_lr`` to
``end_lr``, record the smoothed loss, stop when it diverges, and suggest the rate where the loss
falls fastest (or a tenth of the rate at the minimum). The model's weights are restored
afterwards, so the test can run on a model that is then trained for real.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from modelkit.config import TrainConfig
from modelkit.data.augment import AugmentSettings, train_batch
from modelkit.data.cache import ImageCache
from modelkit.data.imageio import resize_size_for
from modelkit.data.scan import DatasetError, scan_dataset
from modelkit.device import autocast, pick_device, resolve_precision
from modelkit.models import registry as models


@dataclass
class LRFinderResult:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # smoothed (bias-corrected EMA)
    raw_losses: list[float] = field(default_factory=list)
    diverged: bool = False
    suggestion: float | None = None  # steepest descent of the smoothed loss
    min_lr_div10: float | None = None  # a tenth of the rate at the lowest smoothed loss

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def suggest(lrs: list[float], losses: list[float]) -> tuple[float | None, float | None]:
    """(steepest descent, min / 10) of a smoothed loss curve over log-spaced rates."""
    if len(lrs) < 3:
        return None, None
    y = np.asarray(losses, dtype=float)
    x = np.log10(np.asarray(lrs, dtype=float))
    lo = int(np.argmin(y))
    min_div10 = float(lrs[lo]) / 10
    skip = max(1, len(y) // 10)  # the first points are mostly noise of the EMA warm-up
    end = max(lo, skip + 2)
    grads = np.gradient(y[:end], x[:end])
    i = skip + int(np.argmin(grads[skip:end])) if end > skip else int(np.argmin(grads))
    return float(lrs[i]), min_div10


def lr_range_test(
    model: nn.Module,
    arch: str,
    next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    *,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    beta: float = 0.98,
    diverge: float = 4.0,
    device: torch.device | None = None,
    precision: str = "fp32",
    label_smoothing: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> LRFinderResult:
    """Run the test on ``model`` with batches from ``next_batch`` (inputs on the device, labels).

    Every parameter group gets the same rate; the weights (and train/eval mode) are restored."""
    device = device or next(model.parameters()).device
    saved = copy.deepcopy(model.state_dict())
    was_training = model.training
    groups = models.parameter_groups(model, arch, start_lr, None, weight_decay)
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=start_lr, momentum=momentum)
    elif optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=start_lr)
    else:
        opt = torch.optim.AdamW(groups, lr=start_lr)
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    mult = (end_lr / start_lr) ** (1 / max(steps - 1, 1))
    result = LRFinderResult()
    avg, best = 0.0, math.inf
    model.train()
    head_ids = {id(p) for p in models.head_module(model, arch).parameters()}
    if not any(p.requires_grad for p in model.parameters() if id(p) not in head_ids):
        models.freeze_batchnorm(model, arch)  # a frozen backbone keeps its statistics
    try:
        for i in range(steps):
            lr = start_lr * mult**i
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = next_batch()
            with autocast(device, precision):
                out = model(x)
            loss = criterion(out.float(), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            raw = float(loss.detach())
            if progress:
                progress(i + 1, steps)
            if not math.isfinite(raw):
                result.diverged = True
                break
            avg = beta * avg + (1 - beta) * raw
            smoothed = avg / (1 - beta ** (i + 1))
            result.lrs.append(lr)
            result.raw_losses.append(raw)
            result.losses.append(smoothed)
            best = min(best, smoothed)
            if i > 0 and smoothed > diverge * best:
                result.diverged = True
                break
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
        opt.zero_grad(set_to_none=True)
    result.suggestion, result.min_lr_div10 = suggest(result.lrs, result.losses)
    return result


def lr_find(
    cfg: TrainConfig,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> LRFinderResult:
    """The range test for a TrainConfig: its data (train split), model, weights and optimizer.

    On tiny data the test takes at most 5 passes over the training images (at least 30 steps)."""
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    index = scan_dataset(cfg.data_dir, cfg.val_ratio, cfg.test_ratio, cfg.seed)
    train = index.splits.get("train") or []
    if len(index.classes) < 2 or not train:
        raise DatasetError(f"{cfg.data_dir}: need at least 2 classes with training images")
    cache = ImageCache([s.path for s in train], resize_size_for(cfg.image_size), cfg.cache_ram_mb)
    rows = np.flatnonzero(cache.valid)
    if len(rows) == 0:
        raise DatasetError("no readable training images")
    labels = torch.tensor([train[i].label for i in rows])
    torch.manual_seed(cfg.seed)
    model = models.build_model(
        cfg.arch, len(index.classes), cfg.head, cfg.head_hidden, cfg.head_dropout
    )
    models.load_starting_weights(model, cfg.arch, cfg.weights)
    models.set_backbone_trainable(model, cfg.arch, not (cfg.freeze_backbone or cfg.head_epochs))
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    bs = min(cfg.batch_size, len(rows))
    steps_per_pass = max(len(rows) // bs, 1)
    steps = min(steps, max(30, 5 * steps_per_pass))
    generator = torch.Generator().manual_seed(cfg.seed)
    augment = AugmentSettings.from_config(cfg)
    norm = models.normalisation(cfg.arch)
    order: list[int] = []

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal order
        if len(order) < bs:
            order = torch.randperm(len(rows), generator=generator).tolist()
        idx, order = order[:bs], order[bs:]
        x = cache.batch(rows[idx]).to(device)
        x = train_batch(x, cfg.image_size, augment, generator, cfg.channels_last, norm=norm)
        return x, labels[idx]

    return lr_range_test(
        model, cfg.arch, next_batch, optimizer=cfg.optimizer, momentum=cfg.momentum,
        weight_decay=cfg.weight_decay, start_lr=start_lr, end_lr=end_lr, steps=steps,
        device=device, precision=precision, label_smoothing=cfg.label_smoothing,
        progress=progress,
    )  # fmt: skip
