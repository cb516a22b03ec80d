"""Two-phase fine-tuning: which phase an epoch is in, and the rates and span of each phase.

With ``head_epochs = N > 0`` a run first trains the head alone for N epochs (backbone frozen,
its BatchNorm statistics fixed), then unfreezes everything and fine-tunes at lower rates:
``finetune_lr`` for the head (default lr / 10) and ``backbone_lr`` for the backbone (default
``finetune_lr``). Each phase gets its own optimizer and a schedule over its own epochs.
Phase 0 means a plain one-phase run.
"""

from __future__ import annotations

from modelkit.config import TrainConfig


def finetune_lr(cfg: TrainConfig) -> float:
    return cfg.finetune_lr if cfg.finetune_lr is not None else cfg.lr / 10


def rates(cfg: TrainConfig, phase: int) -> tuple[float, float | None]:
    """(head lr, backbone lr or None for 'same as head') of a phase."""
    if phase == 1:
        return cfg.lr, None  # the backbone is frozen: it has no parameter group
    if phase == 2:
        lr = finetune_lr(cfg)
        return lr, cfg.backbone_lr if cfg.backbone_lr is not None else lr
    return cfg.lr, cfg.backbone_lr
