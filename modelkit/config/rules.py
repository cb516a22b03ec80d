"""What is wrong with a TrainConfig, every problem at once.

Wrong types first (JSON and form input arrive untyped, and a string epoch count should say so,
not fail deep inside the loop), then each field's range or choices from the schema, then the
rules that tie fields together. A field already named is not checked further, so each problem
is said once. A new rule between fields is one ``RULES`` line.

Settings that size memory are bounded together as well as one by one: the head's weights
(``head_problem``: between its hidden layers, and in all from the backbone's features to the
classes, which a checkpoint's metadata is checked with too) and the pixels of a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelkit.config.declare import Setting, accepts_float, hint_name, matches

MAX_HEAD_LAYERS = 8
# Weights between hidden layers: 8192,8192 at most (256 MiB in fp32); each width is bounded by
# the schema. Without these a few bytes of settings asked for any number of 8192x8192 layers.
MAX_HEAD_WEIGHTS = 8192 * 8192
# Every weight of the head: features -> hidden layers -> classes (features -> classes for a
# linear head). The widest linear head there is, 2048 features (ResNet-50) x 100,000 classes
# (``names.MAX_CLASSES``), fits; a 1.6 MB checkpoint asking 100,000 classes after a hidden
# layer of 8192 (820 million weights) peaked at 3.9 GB before it failed to load.
MAX_HEAD_TOTAL = 2048 * 100_000
# Images of a batch times their pixels (the larger of image_size and eval_size): 64 at 1024 px,
# 256 at 512 px, 1337 at 224 px. Above it the batch tensor alone is gigabytes and the allocator's
# raw error came instead of a setting's name.
MAX_BATCH_PIXELS = 64 * 1024 * 1024


def head_widths(hidden: list[int], kind: str = "mlp", features: int = 0, classes: int = 0):
    """The widths the head's Linear layers join, in order, as ``registry.make_head`` builds
    them: a linear head ignores ``hidden``; an unknown ``features`` or ``classes`` (0) is left
    out, so the count is what is known of the head."""
    inner = [] if kind == "linear" else list(hidden)
    return [w for w in (features, *inner, classes) if w]


def head_problem(
    hidden: list[int], kind: str = "mlp", features: int = 0, classes: int = 0
) -> str | None:
    """What makes the head (hidden widths already in range) too costly, or None: too many hidden
    layers, too many weights between them, or too many in all once the backbone's ``features``
    and the ``classes`` are known (a checkpoint's metadata knows both; a config its arch)."""
    if len(hidden) > MAX_HEAD_LAYERS:
        return f"head_hidden: {len(hidden)} hidden layers, at most {MAX_HEAD_LAYERS}"
    weights = sum(a * b for a, b in zip(hidden, hidden[1:]))
    if weights > MAX_HEAD_WEIGHTS:
        return (
            f"head_hidden: {weights:,} weights between the hidden layers, at most "
            f"{MAX_HEAD_WEIGHTS:,} (e.g. 8192,8192)"
        )
    widths = head_widths(hidden, kind, features, classes)
    total = sum(a * b for a, b in zip(widths, widths[1:]))
    if total > MAX_HEAD_TOTAL:
        parts = [f"{features:,} features"] if features else []
        parts += [f"{w:,}" for w in widths[bool(features) : len(widths) - bool(classes)]]
        parts += [f"{classes:,} classes"] if classes else []
        return (
            f"{'head' if kind == 'linear' else 'head_hidden'}: a head of "
            f"{' -> '.join(parts)} has {total:,} weights ({total * 4 / 2**20:,.0f} MB in fp32), "
            f"at most {MAX_HEAD_TOTAL:,} (2,048 features x 100,000 classes)"
        )
    return None


def _config_head_problem(c: Any) -> str | None:
    """``head_problem`` of a config: its arch's feature width is known, its classes are not."""
    from modelkit.models.registry import feature_width  # late: models imports torch

    return head_problem(c.head_hidden, c.head, feature_width(c.arch))


def _batch_problem(c: Any) -> str:
    name, side = max(("image_size", c.image_size), ("eval_size", c.eval_size), key=lambda x: x[1])
    return (
        f"batch_size: {c.batch_size} images of {side}x{side} px ({name}) are "
        f"{c.batch_size * side**2:,} pixels a batch, at most {MAX_BATCH_PIXELS:,} "
        f"(e.g. 256 at 512 px, 64 at 1024 px); lower batch_size or {name}"
    )


# (the fields a rule reads, whether they agree, what to say when they do not: a text, or a
# function of the config that gives one)
RULES: list[tuple[str, Callable[[Any], bool], str | Callable[[Any], str]]] = [
    (
        "val_ratio test_ratio",
        lambda c: c.val_ratio + c.test_ratio < 1,
        "val_ratio + test_ratio: must be below 1",
    ),
    (
        "crop_scale_min crop_scale_max",
        lambda c: c.crop_scale_min <= c.crop_scale_max,
        "crop_scale_min/max: need min <= max",
    ),
    (
        "head_epochs epochs",
        lambda c: c.head_epochs < c.epochs,
        "head_epochs: must be >= 0 and below epochs (phase 2 needs at least one epoch)",
    ),
    (
        "eval_size",
        lambda c: c.eval_size in range(16, 1025) or not c.eval_size,
        "eval_size: 0 or >= 16",
    ),
    (
        "freeze_bn weights",
        lambda c: not (c.freeze_bn and c.weights == "none"),
        "freeze_bn: keeps pretrained BatchNorm statistics; with weights none there are none",
    ),
    (
        "head_epochs freeze_backbone",
        lambda c: not (c.head_epochs and c.freeze_backbone),
        "head_epochs: two-phase fine-tuning unfreezes the backbone; turn freeze_backbone off",
    ),
    (
        "cache_frozen_stages frozen_stages",
        lambda c: not c.cache_frozen_stages or c.frozen_stages > 0,
        "cache_frozen_stages: needs frozen_stages above 0 (the stages whose outputs it caches)",
    ),
    (
        "cache_frozen_stages mixup_alpha cutmix_alpha",
        lambda c: not (c.cache_frozen_stages and (c.mixup_alpha or c.cutmix_alpha)),
        "cache_frozen_stages: mixup and cutmix mix images, not cached maps; turn them off",
    ),
    (
        "head_hidden head arch",
        lambda c: not _config_head_problem(c),
        _config_head_problem,
    ),
    (
        "image_size eval_size batch_size",
        lambda c: c.batch_size * max(c.image_size, c.eval_size) ** 2 <= MAX_BATCH_PIXELS,
        _batch_problem,
    ),
]


def problems(cfg: Any, settings: tuple[Setting, ...]) -> list[str]:
    """Every problem of ``cfg`` (a TrainConfig) as one line each; [] when it is valid."""
    found = type_problems(cfg, settings)
    lines = list(found.values())
    bad = set(found)
    for s in settings:
        if s.name not in bad and (problem := s.problem(getattr(cfg, s.name))):
            lines.append(problem)
            bad.add(s.name)
    for names, ok, message in RULES:
        if bad.isdisjoint(names.split()) and not ok(cfg):
            lines.append(message(cfg) if callable(message) else message)
    return lines


def type_problems(cfg: Any, settings: tuple[Setting, ...]) -> dict[str, str]:
    """{field: problem} for values of the wrong type."""
    found = {}
    for s in settings:
        value = getattr(cfg, s.name)
        if not matches(value, s.hint):
            found[s.name] = (
                f"{s.name}: expected {hint_name(s.hint)}, got {type(value).__name__} {value!r}"
            )
    return found


def coerced(cfg: Any, settings: tuple[Setting, ...]) -> dict[str, float]:
    """{field: float} for whole numbers given where a float is expected (``lr=1``): the values a
    TrainConfig stores instead, so its JSON and its comparisons are the same however given."""
    out = {}
    for s in settings:
        value = getattr(cfg, s.name)
        if isinstance(value, int) and not isinstance(value, bool) and accepts_float(s.hint):
            out[s.name] = float(value)
    return out
