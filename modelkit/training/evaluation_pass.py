"""The logits of a split during a run: what each epoch's validation and the final evaluation
read. Evaluation uses the weights being judged (the EMA weights when EMA is on), at the
evaluation size (``eval_size``, else the image size). The final evaluation uses the run's
test-time augmentation, exactly as the Predictor does from the checkpoint's ``preprocess``
record; each epoch's validation looks at the centre view only, as timm's does: flip TTA doubles
its cost for a curve and a best-epoch choice that the plain view tells as well."""

from __future__ import annotations

from collections.abc import Callable

import torch

from modelkit.data.augment import eval_views
from modelkit.device import autocast, inference_batch
from modelkit.models import registry as models
from modelkit.models.folding import folded_copy
from modelkit.training import stage_cache
from modelkit.training.callbacks.base import Trainer


@torch.no_grad()
def split_logits(
    trainer: Trainer,
    split: str,
    tta: bool = True,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) of a split; with the run's TTA (``tta``) the logits are the mean over
    the views, else those of the centre view. ``progress(n)`` hears of each batch of ``n``
    images done (the watcher's bar for a validation or an evaluation)."""
    tell = progress or (lambda n: None)
    cfg, data = trainer.config, trainer.data
    model = trainer.eval_model
    model.eval()
    if trainer.features is not None and split in trainer.features.splits:
        head = models.head_module(model, cfg.arch)
        views = trainer.features.splits[split]  # V x N x D: the logits of the views averaged
        views = views if tta else views[:1]  # the centre view comes first
        logits = torch.stack([head(v).float() for v in views]).mean(0)
        tell(len(logits))
        return logits.cpu(), data.labels[split]
    maps = trainer.stage_cache.splits.get(split) if trainer.stage_cache is not None else None
    if maps is not None:  # the frozen stages' outputs of the views: the rest of the network
        rest = stage_cache.rest_of(model, cfg.arch, cfg.frozen_stages)
        bs = inference_batch(trainer.device, max(cfg.batch_size * 2, 1))
        outs = []
        for start in range(0, maps.shape[1], bs):
            with autocast(trainer.device, trainer.precision):
                views = maps[: (len(maps) if tta else 1), start : start + bs]
                outs.append(torch.stack([rest(v).float().cpu() for v in views]).mean(0))
            tell(len(outs[-1]))
        logits = torch.cat(outs) if outs else torch.zeros(0, len(trainer.classes))
        return logits, data.labels[split]
    forward = trainer.forward if model is trainer.model else model
    if not (cfg.compile or trainer.dist.enabled):  # BatchNorm folded: a third faster on a CPU
        forward = folded_copy(model)
    size, norm = cfg.eval_size or cfg.image_size, models.normalisation(cfg.arch)
    bs = inference_batch(trainer.device, max(cfg.batch_size * 2, 1))
    rows, outs = data.rows[split], []
    for start in range(0, len(rows), bs):
        x = data.cache.batch(rows[start : start + bs]).to(trainer.device, non_blocking=True)
        views = eval_views(x, size, cfg.channels_last, norm, cfg.tta if tta else "none")
        with autocast(trainer.device, trainer.precision):
            outs.append(torch.stack([forward(v).float().cpu() for v in views]).mean(0))
        tell(len(x))
    logits = torch.cat(outs) if outs else torch.zeros(0, len(trainer.classes))
    return logits, data.labels[split]
