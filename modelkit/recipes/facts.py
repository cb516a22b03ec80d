"""What the ``auto`` recipe knows before it chooses: the folder's scan, the images' sizes (from
a few hundred headers, no decoding), the class balance, whether ImageNet weights can be had
here, the device and the time budget. Cheap to learn, so the recipe can be shown before a run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from statistics import median
from typing import Any

from modelkit.data.scan import scan_dataset
from modelkit.errors import ModelkitError

SIZE_SAMPLE = 300  # image headers read to learn the images' sizes
# the budget auto gives itself when none is asked for (default_budget)
CPU_SECONDS_PER_IMAGE = 0.05
GPU_SECONDS_PER_IMAGE = 0.005
MIN_BUDGET, MAX_BUDGET = 120.0, 3600.0


class AutoRecipeError(ModelkitError, ValueError):
    """The auto recipe cannot look at the dataset (no folder given, or none there)."""


@dataclass
class Facts:
    """What the auto recipe knows before choosing."""

    images: int  # training images
    classes: int
    per_class: dict[str, int]
    median_side: int  # median shorter side of a sample of the images, px (0: unknown)
    pretrained: str  # the architecture with ImageNet weights here, "" when none can be had
    gpu: bool
    time_budget: float = 0.0  # what is left for training (the probe's seconds are spent)
    probe: Any = None  # ProbeReport: the backbones measured on these images, when measured
    chosen_budget: float = 0.0  # the budget auto gave itself when none was asked for (0: given)
    grayscale: bool = False  # most sampled images are single-channel (X-rays, scans)
    race: Any = None  # RaceReport: the paths raced on held-out training images, when raced
    val_images: int = 0  # validated every epoch
    test_images: int = 0  # evaluated once at the end, as the validation images are

    @property
    def seconds_per_image(self) -> float:
        """Seconds to decode and embed one training image with the chosen backbone, as the
        probe measured them on this machine (its load included); 0 when not measured."""
        probe = self.probe
        won = [c for c in probe.candidates if c.arch == probe.winner] if probe else []
        return won[0].seconds_per_image if won else 0.0

    @property
    def slowdown(self) -> float:
        """How much slower this machine ran the backbone than the registry's CPU rates assume
        (measured on a quiet 2-core CPU): the rule-of-thumb costs are scaled by it, so a busy
        or slower machine plans cheaper paths. 1 when nothing was measured."""
        if not self.seconds_per_image:
            return 1.0
        from modelkit.models.registry import architecture, cpu_rate_224
        from modelkit.recipes.probe import INFERENCE_SPEEDUP

        arch = self.probe.winner
        size = architecture(arch).image_size
        nominal = 1 / (INFERENCE_SPEEDUP * cpu_rate_224(arch) * (224 / size) ** 2)
        return max(self.seconds_per_image / nominal, 0.25)

    @property
    def imbalance(self) -> float:
        counts = [c for c in self.per_class.values() if c]
        return max(counts) / min(counts) if counts else 1.0


def image_sides(paths: list[str], limit: int = SIZE_SAMPLE, seed: int = 0) -> list[int]:
    """Shorter sides of up to ``limit`` images picked at random; only their headers are read.
    Unreadable files are skipped (the dataset report names them)."""
    from PIL import Image

    from modelkit.data.imageio import DECODE_ERRORS, FORMATS

    sample = random.Random(seed).sample(paths, min(limit, len(paths)))
    sides = []
    for path in sample:
        try:  # photo formats only: a DDS of unknown kind raises NotImplementedError here
            with Image.open(path, formats=FORMATS) as im:
                sides.append(min(im.size))
        except (OSError, Image.DecompressionBombError, *DECODE_ERRORS):
            continue
    return sides


def mostly_grayscale(paths: list[str], limit: int = 60, seed: int = 0) -> bool:
    """Whether most of up to ``limit`` images picked at random are single-channel, from their
    headers: such data is unlike ImageNet, so training from scratch is worth racing."""
    from PIL import Image

    from modelkit.data.imageio import DECODE_ERRORS, FORMATS

    modes = []
    for path in random.Random(seed).sample(paths, min(limit, len(paths))):
        try:
            with Image.open(path, formats=FORMATS) as im:
                modes.append(im.mode in ("1", "L", "LA", "I", "I;16", "F"))
        except (OSError, Image.DecompressionBombError, *DECODE_ERRORS):
            continue
    return bool(modes) and sum(modes) > len(modes) / 2


def gather_facts(
    data_dir: str,
    explicit: dict[str, Any],
    probe_network: bool = True,
    gpu: bool | None = None,
    measure: bool = False,
) -> Facts:
    """Facts about ``data_dir`` and this machine; ``explicit`` settings that bear on them (the
    starting weights, the architecture, the device, the split, the time budget) are honoured.
    ``measure``: also embed a sample of the training images with each bundled backbone and
    score them (``modelkit.recipes.probe``; seconds to a minute, so only when a run starts)."""
    from modelkit.device import pick_device
    from modelkit.models.weights import default_pretrained_arch, imagenet_available

    if not data_dir:
        raise AutoRecipeError("recipe auto: needs the dataset folder to look at")
    index = scan_dataset(
        data_dir, explicit.get("val_ratio", 0.2), explicit.get("test_ratio", 0.0),
        explicit.get("seed", 0),
    )  # fmt: skip
    train = index.splits.get("train", [])
    per_class = {c: 0 for c in index.classes}
    for sample in train:
        per_class[index.classes[sample.label]] += 1
    sides = image_sides([s.path for s in train])
    pretrained = ""
    if explicit.get("weights", "imagenet") == "imagenet":
        arch = explicit.get("arch") or default_pretrained_arch(probe_network)
        pretrained = arch if imagenet_available(arch, probe_network) else ""
    if gpu is None:
        gpu = pick_device(explicit.get("device", "auto")).type != "cpu"
    facts = Facts(
        images=len(train), classes=len(index.classes), per_class=per_class,
        median_side=int(median(sides)) if sides else 0, pretrained=pretrained, gpu=gpu,
        time_budget=float(explicit.get("time_budget", 0.0) or 0.0),
        grayscale=measure and mostly_grayscale([s.path for s in train]),
        val_images=len(index.splits.get("val", [])), test_images=len(index.splits.get("test", [])),
    )  # fmt: skip
    if measure and not facts.time_budget and "epochs" not in explicit:
        # a run being started with everything the person asked known: no budget, no epochs
        facts.time_budget = facts.chosen_budget = default_budget(facts.images, gpu)
    if measure and _measurable(facts, explicit):
        from modelkit.recipes.probe import probe_backbones

        facts.probe = probe_backbones(
            [s.path for s in train], [s.label for s in train], facts.time_budget,
            int(explicit.get("seed", 0)), "cuda" if gpu else "cpu",
        )  # fmt: skip
        if facts.time_budget:
            facts.time_budget = max(facts.time_budget - facts.probe.seconds, 1.0)
    return facts


def default_budget(images: int, gpu: bool) -> float:
    """A budget for a run nobody gave one: about the time in which auto reached its best on the
    data sets it was measured on (Caltech-101's 7,315 images: 0.950 in 5 minutes on a 2-core CPU,
    benchmarks/results/time_to_accuracy_caltech101_5m_auto_stage_maps_cpu2.json), in whole
    minutes, two at least (hymenoptera's 0.954 took 41 s), an hour at most."""
    seconds = images * (GPU_SECONDS_PER_IMAGE if gpu else CPU_SECONDS_PER_IMAGE)
    return float(min(max(60 * -(-seconds // 60), MIN_BUDGET), MAX_BUDGET))


def _measurable(facts: Facts, explicit: dict[str, Any]) -> bool:
    """A choice of backbone is left to make: pretrained weights and no architecture given.
    Tiny images too (upscaled to the backbones' size), unless their size was given: whether
    ImageNet features beat a small network from scratch on them is what the probe and the race
    measure (CIFAR-10, 1,500 images, 5 min: the few-images recipe's upscaled Lite0 0.693 against
    0.343 from scratch, benchmarks/results/suite_5m_cpu2.json)."""
    from modelkit.recipes.probe import installed_backbones

    tiny = 0 < facts.median_side <= 64 and not facts.gpu
    return (
        bool(facts.pretrained)
        and "arch" not in explicit
        and not (tiny and "image_size" in explicit)
        and (len(installed_backbones()) > 1)
        and facts.images > 0
    )
