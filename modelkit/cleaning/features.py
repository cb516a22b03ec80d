"""One feature vector per image, computed once: the input of the k-fold heads and of the
near-duplicate search.

The default is the bundled ImageNet backbone (EfficientNet-Lite0, no download), whose
penultimate features already separate most photo classes linearly; a trained run's backbone
fits the dataset better once one exists. Decoding goes through the decode cache, so a second
scoring of the same folder in the app skips the decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from modelkit.data.cache import ImageCache
from modelkit.data.imageio import resize_size_for
from modelkit.device import pick_device, resolve_precision
from modelkit.errors import ModelkitError
from modelkit.models import registry
from modelkit.models.weights import BUNDLED_ARCH
from modelkit.training.features import backbone_features

PRETRAINED = "pretrained"  # the bundled backbone: the source when no run is given
PIXELS = "pixels"  # colour thumbnails, no model: a quick look, and what the tests use
Progress = Callable[[str, float], None]


class FeatureError(ModelkitError, RuntimeError):
    """The images cannot be embedded with the asked-for source; the message says why."""


def _pixels(cache: ImageCache, side: int = 8) -> np.ndarray:
    x = cache.batch(np.arange(len(cache))).permute(0, 3, 1, 2).float() / 255.0
    small = torch.nn.functional.adaptive_avg_pool2d(x, side)
    return small.flatten(1).numpy().astype(np.float32)


def _model_for(source: str, num_classes: int) -> tuple[torch.nn.Module, str, int, str]:
    """(model, arch, image size, what it is) for the bundled backbone or a run folder."""
    if source == PRETRAINED:
        arch = BUNDLED_ARCH
        model = registry.build_model(arch, num_classes)
        registry.load_starting_weights(model, arch, "imagenet")
        return model, arch, registry.ARCHITECTURES[arch].image_size, f"{arch} (ImageNet)"
    from modelkit.serving.predictor import Predictor

    run = Path(source)
    if not run.exists():
        raise FeatureError(f"{run}: no such run folder or checkpoint")
    predictor = Predictor(run, device="cpu")
    if predictor.members:  # an ensemble: its members' features differ in width and meaning
        raise FeatureError(
            f"{run}: an ensemble has no single backbone to embed with; use one of its member "
            f"runs ({', '.join(predictor.members)})"
        )
    return predictor.model, predictor.arch, predictor.image_size, f"run {run.name}"


def embed_images(
    paths: Sequence[str],
    source: str = PRETRAINED,
    device: str = "auto",
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(features N x D for the images that decode, which rows decoded, what embedded them).

    ``source`` is ``"pretrained"``, ``"pixels"`` or a run folder / checkpoint path.
    ``progress(stage, fraction)`` is called from the decoding worker threads too."""
    tell = progress or (lambda _msg, _frac: None)
    if source == PIXELS:
        cache = ImageCache(paths, 32, progress=lambda d, t: tell("decoding", 0.9 * d / t))
        feats = _pixels(cache)[cache.valid]
        return feats, cache.valid, "colour thumbnails"
    model, arch, size, what = _model_for(source, 2)
    feats, valid = embed_with_model(model, arch, size, paths, device, tell)
    return feats, valid, what


def embed_with_model(
    model: torch.nn.Module,
    arch: str,
    size: int,
    paths: Sequence[str],
    device: str = "auto",
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(features of the images that decode, which rows decoded) from ``model``'s backbone: the
    cleaner's, the labeller's and ``auto``'s probe's one way to embed a list of images."""
    tell = progress or (lambda _msg, _frac: None)
    dev = pick_device(device)
    model.to(dev)
    cache = ImageCache(
        paths, resize_size_for(size), progress=lambda d, t: tell("decoding", 0.4 * d / t)
    )
    rows = np.flatnonzero(cache.valid)
    done = [0]

    def step(n: int) -> None:
        done[0] += n
        tell("embedding", 0.4 + 0.5 * done[0] / max(len(rows), 1))

    feats = backbone_features(
        model, arch, cache, rows, size, dev, resolve_precision("auto", dev), progress=step
    )
    assert feats is not None  # no should_stop given
    return feats.cpu().numpy().astype(np.float32), cache.valid
