"""What the benchmarks share: the naive reference loop's data side (the PyTorch tutorial's),
running each side in a fresh child process, and an untrained run to time inference on.

torchvision transforms on PIL images, read file by file through a DataLoader (what
ImageFolder does), over modelkit's own split so both sides of a comparison see the same files.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import queue


class Folder:
    """ImageFolder over a list of modelkit Samples (path, label)."""

    def __init__(self, samples, tf):
        self.samples, self.tf = samples, tf

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from torchvision.datasets.folder import default_loader

        s = self.samples[i]
        return self.tf(default_loader(s.path)), s.label


def tutorial_transforms(image_size: int, mean_std, crop_scale=(0.08, 1.0)):
    """(train, val) transforms: random resized crop + flip for training, resize to
    size/0.875 + centre crop for validation, both normalised with the weights' mean/std."""
    from torchvision import transforms

    norm = transforms.Normalize(*mean_std)
    train = transforms.Compose(
        [
            transforms.RandomResizedCrop(image_size, scale=crop_scale),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            norm,
        ]
    )
    val = transforms.Compose(
        [
            transforms.Resize(int(round(image_size / 0.875))),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            norm,
        ]
    )
    return train, val


def parse_sets(items: list[str] | None) -> dict:
    """``--set NAME=JSON`` options as settings: a benchmark's way to try one change."""
    settings = {}
    for item in items or []:
        name, _, value = item.partition("=")
        settings[name] = json.loads(value)
    return settings


def in_child(fn, *fn_args) -> dict:
    """``fn(*fn_args, q)`` in a fresh spawned process (its own threads and allocator, nothing
    warmed up by the other side); returns what it put on ``q``, or exits if it died."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*fn_args, q))
    p.start()
    while True:
        try:
            result = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():
                raise SystemExit(f"{fn.__name__} failed in its child process (see above)") from None
    p.join()
    return result


def untrained_run(folder, arch: str, image_size: int):
    """A run folder holding an untrained ``arch`` checkpoint for 10 classes: what the inference
    benchmarks time (speed does not depend on the weights) when no trained run is given."""
    import torch

    from modelkit import TrainConfig
    from modelkit.atomic import atomic_write_json
    from modelkit.models.checkpoint import save_checkpoint
    from modelkit.models.registry import build_model, preprocessing
    from modelkit.runs.folder import RunFolder

    torch.manual_seed(0)
    classes = [f"class{i}" for i in range(10)]
    cfg = TrainConfig(arch=arch, weights="none", image_size=image_size, precision="fp32")
    run = RunFolder(folder / "run")
    save_checkpoint(
        run.best,
        {
            "model": build_model(arch, len(classes)).state_dict(),
            "arch": arch,
            "classes": classes,
            "config": cfg.to_dict(),
            "preprocess": preprocessing(image_size, arch),
            "epoch": 1,
            "metrics": {},
        },
    )
    atomic_write_json(run.config, cfg.to_dict())
    return run.path
