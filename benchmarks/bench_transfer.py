"""Transfer learning from real ImageNet weights: modelkit's paths against the PyTorch tutorial.

Every path starts from the same model and weights (by default EfficientNet-Lite0 with its bundled
ImageNet weights, so this runs offline) on the same split, and reports validation accuracy, wall
time from the dataset folder (decoding, features, training, evaluation) and training images per
second of wall time. The reference is the PyTorch transfer-learning tutorial's loop: torchvision
transforms every epoch, a DataLoader, fp32, SGD with momentum and a step schedule. Each path runs
in its own child process; per-epoch (seconds, val_acc) curves give the time each path needs to
reach the tutorial's own final accuracy.

    python benchmarks/bench_transfer.py ../shared/datasets/hymenoptera_data
    python benchmarks/bench_transfer.py ../shared/datasets/caltech101 --paths frozen-cache
    python benchmarks/bench_transfer.py DATA --epochs 2 --tutorial-epochs 5 --json out.json
    python benchmarks/bench_transfer.py DATA --paths frozen-cache --set feature_passes=1

A folder without train/val sub-folders is split 80/20 by modelkit's scanner (seeded), and the
tutorial loop reads exactly the same split.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_loop import Folder, in_child, parse_sets, tutorial_transforms  # noqa: E402

PATHS = ("frozen-cache", "head-then-finetune", "finetune-backbone-lr", "few-images", "tutorial")


def path_settings(name: str, args) -> dict:
    """TrainConfig settings of a modelkit path: what a user would pick for it."""
    from modelkit.recipes import recipe

    common = dict(arch=args.arch, weights="imagenet", image_size=args.image_size)
    common |= dict(batch_size=args.batch_size, seed=args.seed, val_ratio=args.val_ratio)
    if name == "frozen-cache":  # head only, on backbone features computed once per pass
        return common | dict(
            freeze_backbone=True, epochs=args.head_epochs, optimizer="adamw", lr=1e-3
        )
    if name == "head-then-finetune":  # head first (on cached features), then everything
        return common | dict(
            epochs=args.head_epochs + args.epochs, head_epochs=args.head_epochs,
            optimizer="adamw", lr=1e-3, finetune_lr=3e-4, backbone_lr=1e-4, weight_decay=0.01,
        )  # fmt: skip
    if name == "finetune-backbone-lr":  # everything at once, the backbone at a lower rate
        return common | dict(
            epochs=args.epochs, optimizer="adamw", lr=1e-3, backbone_lr=3e-4,
            weight_decay=0.01, scheduler="onecycle",
        )  # fmt: skip
    if name == "few-images":  # the recipe as shipped, its length capped for the benchmark
        settings = recipe("few-images") | common
        head = min(settings["head_epochs"], args.head_epochs)
        return settings | dict(head_epochs=head, epochs=head + args.epochs)
    raise ValueError(name)


def run_modelkit(name: str, args, q) -> None:
    from modelkit import TrainConfig, Trainer
    from modelkit.events import EpochEnd

    t0 = time.perf_counter()
    curve: list[tuple[float, float]] = []
    seen = [0]

    def listen(event):
        if isinstance(event, EpochEnd):
            m = event.metrics
            curve.append((time.perf_counter() - t0, float(m.get("val_acc", 0.0))))
            seen[0] += round(m["images_per_second"] * m["epoch_seconds"])

    with tempfile.TemporaryDirectory() as scratch:
        runs = str(args.keep_runs / name) if args.keep_runs else scratch
        settings = path_settings(name, args) | parse_sets(args.set)  # --set tta='"flip"'
        cfg = TrainConfig(data_dir=str(args.data), runs_dir=runs, tensorboard=False, **settings)
        result = Trainer(cfg, [listen]).fit()
    wall = time.perf_counter() - t0
    q.put(_result(curve, wall, seen[0], result.state, settings))


def _result(curve, wall, images, state, settings) -> dict:
    return {
        "val_acc": curve[-1][1] if curve else 0.0,
        "best_val_acc": max((a for _, a in curve), default=0.0),
        "wall_s": wall,
        "train_images_per_second": images / wall if wall > 0 else 0.0,
        "curve": curve,
        "state": state,
        "settings": {k: v for k, v in settings.items() if not isinstance(v, Path)},
    }


def run_tutorial(args, q) -> None:
    """The tutorial's "finetuning the ConvNet": SGD(lr 1e-3, momentum 0.9), StepLR(7, 0.1),
    RandomResizedCrop + flip for training, Resize + CenterCrop for validation, fp32."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from modelkit import scan_dataset
    from modelkit.models.registry import build_model, load_starting_weights, normalisation

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    index = scan_dataset(args.data, args.val_ratio, 0.0, args.seed)
    train_tf, val_tf = tutorial_transforms(args.image_size, normalisation(args.arch))
    bs, workers = args.tutorial_batch_size, args.workers
    train_set = Folder(index.splits["train"], train_tf)
    train = DataLoader(train_set, bs, shuffle=True, num_workers=workers)
    val = DataLoader(Folder(index.splits["val"], val_tf), bs, num_workers=workers)
    model = build_model(args.arch, len(index.classes))
    load_starting_weights(model, args.arch, "imagenet")
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1)
    loss_fn = nn.CrossEntropyLoss()
    curve = []
    for _ in range(args.tutorial_epochs):
        model.train()
        for x, y in train:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        sched.step()
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val:
                correct += int((model(x).argmax(1) == y).sum())
                total += len(y)
        curve.append((time.perf_counter() - t0, correct / max(total, 1)))
    wall = time.perf_counter() - t0
    settings = dict(arch=args.arch, epochs=args.tutorial_epochs, batch_size=bs, lr=0.001)
    images = len(train_set) * args.tutorial_epochs
    q.put(_result(curve, wall, images, "finished", settings))


def time_to(curve: list, target: float) -> float | None:
    """Seconds from the start until validation accuracy first reached ``target`` (None: never)."""
    return next((t for t, acc in curve if acc >= target - 1e-9), None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--paths", default=",".join(PATHS), help=f"any of {','.join(PATHS)}")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs of each path")
    ap.add_argument("--head-epochs", type=int, default=5, help="head-only epochs (frozen paths)")
    ap.add_argument("--tutorial-epochs", type=int, default=5)
    ap.add_argument("--tutorial-batch-size", type=int, default=4, help="the tutorial's own")
    ap.add_argument("--workers", type=int, default=2, help="tutorial DataLoader workers")
    ap.add_argument("--val-ratio", type=float, default=0.2, help="for folders without val/")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--keep-runs", type=Path, help="keep each path's run under DIR/<path>")
    ap.add_argument("--set", action="append", help="NAME=JSON for every modelkit path")
    args = ap.parse_args(argv)
    chosen = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PATHS))
    if unknown:
        ap.error(f"unknown paths {unknown}; choose from {list(PATHS)}")

    results = {}
    for name in chosen:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        if name == "tutorial":
            results[name] = in_child(run_tutorial, args)
        else:
            results[name] = in_child(run_modelkit, name, args)
    tutorial = results.get("tutorial")
    for r in results.values():
        if tutorial:
            reached = time_to(r["curve"], tutorial["val_acc"])
            r["time_to_tutorial_final_acc_s"] = reached
            r["speedup_to_tutorial_final_acc_x"] = (
                time_to(tutorial["curve"], tutorial["val_acc"]) / reached if reached else None
            )
            r["wall_time_x"] = tutorial["wall_s"] / r["wall_s"]

    print(f"\n{args.arch}, {args.image_size}px, {args.data}")
    print(f"{'path':<22}{'val acc':>9}{'best':>7}{'wall s':>9}{'img/s':>8}{'to tut. acc':>13}")
    for name, r in results.items():
        reach = r.get("time_to_tutorial_final_acc_s")
        reach_txt = f"{reach:.1f}s" if reach is not None else ("-" if tutorial else "")
        print(
            f"{name:<22}{r['val_acc']:>9.4f}{r['best_val_acc']:>7.3f}{r['wall_s']:>9.1f}"
            f"{r['train_images_per_second']:>8.1f}{reach_txt:>13}"
        )
    out = {"args": {k: str(v) for k, v in vars(args).items()}, "paths": results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
