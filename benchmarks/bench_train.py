"""Training speed of modelkit against the naive loop everyone writes, in one invocation.

The reference is the PyTorch transfer-learning tutorial: ImageFolder-style PIL transforms every
epoch, a DataLoader with 2 workers, an fp32 model and SGD. Both sides train the same
architecture on the same split, image size, batch size and epochs; each runs in its own child
process so peak RSS and thread pools are its own. A third child times the bare training step
on random tensors with modelkit's compute settings: the ceiling no loop can pass on this machine.

    python benchmarks/bench_train.py ../shared/datasets/hymenoptera_data --image-size 224
    python benchmarks/bench_train.py DATA --freeze   # head-only training on a frozen backbone
    python benchmarks/bench_train.py DATA --image-size 128 --epochs 10 --seeds 3  # accuracy noise
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_loop import Folder, in_child, tutorial_transforms  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _summarise(epoch_seconds: list[float], images: int, first_epoch_end: float, wall: float):
    steady = epoch_seconds[1:] or epoch_seconds
    return {
        "steady_images_per_second": images * len(steady) / sum(steady),
        "first_epoch_end_s": first_epoch_end,
        "wall_s": wall,
        "epoch_seconds": epoch_seconds,
    }


def run_naive(args, q) -> None:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from modelkit import scan_dataset
    from modelkit.models.registry import build_model, load_starting_weights, normalisation
    from modelkit.models.stages import set_backbone_trainable

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    index = scan_dataset(args.data, seed=args.seed)
    train_tf, val_tf = tutorial_transforms(
        args.image_size, normalisation(args.arch), crop_scale=(0.35, 1.0)
    )

    train = DataLoader(
        Folder(index.splits["train"], train_tf), args.batch_size, shuffle=True, num_workers=2
    )
    val = DataLoader(Folder(index.splits["val"], val_tf), args.batch_size, num_workers=2)
    model = build_model(args.arch, len(index.classes))
    load_starting_weights(model, args.arch, args.weights)
    if args.freeze:
        set_backbone_trainable(model, args.arch, False)
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, momentum=0.9
    )
    loss_fn = nn.CrossEntropyLoss()
    epoch_seconds, first_end, val_acc = [], None, 0.0
    for _ in range(args.epochs):  # the tutorial's train phase, then its val phase, each epoch
        model.train()
        start = time.perf_counter()
        for x, y in train:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        epoch_seconds.append(time.perf_counter() - start)
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val:
                correct += int((model(x).argmax(1) == y).sum())
                total += len(y)
        val_acc = correct / max(total, 1)
        first_end = first_end or time.perf_counter() - t0
    result = _summarise(
        epoch_seconds, len(index.splits["train"]), first_end, time.perf_counter() - t0
    )
    result.update(val_acc=val_acc, peak_rss_mb=_peak_rss_mb())
    q.put(result)


def run_modelkit(args, q) -> None:
    from modelkit import TrainConfig, Trainer
    from modelkit.events import EpochEnd

    t0 = time.perf_counter()
    epochs: list[dict] = []
    first_end: list[float] = []

    def listen(event):
        if isinstance(event, EpochEnd):
            epochs.append(event.metrics)
            if not first_end:
                first_end.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as runs:
        cfg = TrainConfig(
            data_dir=str(args.data),
            arch=args.arch,
            weights=args.weights,
            image_size=args.image_size,
            batch_size=args.batch_size,
            epochs=args.epochs,
            lr=args.lr,
            weight_decay=0.0,  # the tutorial's SGD: only the speed work differs between the sides
            scheduler="none",
            freeze_backbone=args.freeze,
            precision=args.precision,
            seed=args.seed,
            runs_dir=runs,
            crop_scale_min=0.35,
        )
        Trainer(cfg, [listen]).fit()
    seconds = [m["epoch_seconds"] for m in epochs]
    n = epochs[-1]["images_per_second"] * seconds[-1]
    result = _summarise(seconds, round(n), first_end[0], time.perf_counter() - t0)
    result.update(val_acc=epochs[-1].get("val_acc"), peak_rss_mb=_peak_rss_mb())
    q.put(result)


def run_minimal(args, q) -> None:
    """The fastest honest loop: what modelkit computes (bf16 autocast, channels_last, SGD) on
    decoded uint8 squares already in RAM (modelkit's own decode cache, so decoding is equal),
    with the cheapest real augmentation, a random crop (one offset a batch) and a flip of half
    the batch, and nothing else: no events, metrics, EMA or checkpoints. What modelkit's steady
    rate loses against it is the price of its augmentation and bookkeeping."""
    import torch

    from modelkit import scan_dataset
    from modelkit.data.augment import normalise, to_float
    from modelkit.data.cache import ImageCache
    from modelkit.data.imageio import resize_size_for
    from modelkit.models.registry import load_starting_weights, normalisation

    torch.manual_seed(args.seed)
    index = scan_dataset(args.data, seed=args.seed)
    train = index.splits["train"]
    cache = ImageCache([s.path for s in train], resize_size_for(args.image_size), store=None)
    keep = torch.from_numpy(cache.valid).nonzero().flatten()
    labels = torch.tensor([s.label for s in train])
    model, device, step = _bare_training(args, len(index.classes))
    load_starting_weights(model, args.arch, args.weights)
    norm, size, side = normalisation(args.arch), args.image_size, cache.size
    epoch_seconds = []
    for _ in range(args.epochs):
        model.train()
        start = time.perf_counter()
        order = keep[torch.randperm(len(keep))]
        for first in range(0, len(order) - args.batch_size + 1, args.batch_size):
            idx = order[first : first + args.batch_size]
            top, left = (int(v) for v in torch.randint(0, side - size + 1, (2,)))
            x = cache.batch(idx)[:, top : top + size, left : left + size]
            x = to_float(x)
            half = len(idx) // 2
            x[:half] = x[:half].flip(-1)
            step(normalise(x, True, norm).to(device), labels[idx].to(device))
        epoch_seconds.append(time.perf_counter() - start)
    steady = epoch_seconds[1:] or epoch_seconds
    images = len(keep) // args.batch_size * args.batch_size
    q.put({"steady_images_per_second": images * len(steady) / sum(steady)})


def _bare_training(args, classes: int):
    """modelkit's compute settings without its loop: the model in channels_last on the device,
    SGD with momentum, and a step under bf16 autocast (where the device does bf16) that waits
    for the device. The bare step and the minimal loop share them, so they differ only in data."""
    import torch

    from modelkit.device import autocast, pick_device, resolve_precision
    from modelkit.models.registry import build_model
    from modelkit.models.stages import set_backbone_trainable

    device = pick_device("auto")
    precision = resolve_precision(args.precision, device)
    model = build_model(args.arch, classes).to(device, memory_format=torch.channels_last)
    if args.freeze:
        set_backbone_trainable(model, args.arch, False)
    opt = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, momentum=0.9
    )

    def step(x, y) -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        float(loss.detach())  # waits for the device

    return model, device, step


def run_bare_step(args, q) -> None:
    """The ceiling: modelkit's model and precision stepping on random tensors already in memory,
    so no decoding, augmentation or bookkeeping. A loop cannot beat this on the same machine;
    how close modelkit gets says what is left in the loop and what is the hardware."""
    import torch

    torch.manual_seed(args.seed)
    _, device, step = _bare_training(args, 2)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (args.batch_size,), device=device)
    for _ in range(2):
        step(x, y)
    steps, start = 8, time.perf_counter()
    for _ in range(steps):
        step(x, y)
    q.put({"steady_images_per_second": steps * args.batch_size / (time.perf_counter() - start)})


def _combine(runs: list[dict]) -> dict:
    """Means over seeds, with the spread of validation accuracy: on a small validation set one
    seed's accuracy moves by several points, so a comparison needs the noise beside it."""
    keys = ("steady_images_per_second", "first_epoch_end_s", "wall_s", "val_acc")
    out = {k: statistics.fmean(r[k] for r in runs) for k in keys}
    out["val_acc_sd"] = statistics.stdev(r["val_acc"] for r in runs) if len(runs) > 1 else 0.0
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["epoch_seconds"] = runs[0]["epoch_seconds"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--weights", default="none", help="imagenet needs the weights cached")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--freeze", action="store_true", help="train the head only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--seeds", type=int, default=1, help="repeat both sides over this many seeds, report means"
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    naive_runs, our_runs = [], []
    for seed in range(args.seed, args.seed + args.seeds):  # alternate so drift hits both sides
        args.seed = seed
        naive_runs.append(in_child(run_naive, args))
        our_runs.append(in_child(run_modelkit, args))
    args.seed -= args.seeds - 1
    naive, ours = _combine(naive_runs), _combine(our_runs)
    bare = in_child(run_bare_step, args)["steady_images_per_second"]
    minimal = in_child(run_minimal, args)["steady_images_per_second"]
    ratios = {
        "throughput_x": ours["steady_images_per_second"] / naive["steady_images_per_second"],
        "wall_time_x": naive["wall_s"] / ours["wall_s"],
        "first_epoch_x": naive["first_epoch_end_s"] / ours["first_epoch_end_s"],
        "val_acc_diff": ours["val_acc"] - naive["val_acc"],
        "bare_step_ceiling_x": bare / naive["steady_images_per_second"],
        "share_of_ceiling": ours["steady_images_per_second"] / bare,
        "share_of_minimal_loop": ours["steady_images_per_second"] / minimal,
    }
    rows = [
        ("steady images/s", "steady_images_per_second", "{:.1f}"),
        ("first epoch end (s)", "first_epoch_end_s", "{:.1f}"),
        (f"wall for {args.epochs} epochs (s)", "wall_s", "{:.1f}"),
        ("val accuracy", "val_acc", "{:.3f}"),
        ("peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
    ]
    mode = "head only (frozen backbone)" if args.freeze else "full fine-tuning"
    print(f"\n{args.arch} {mode}, {args.image_size}px, batch {args.batch_size}, {args.data}")
    seeds = f"seeds {args.seed}..{args.seed + args.seeds - 1}, mean" if args.seeds > 1 else ""
    print(f"{seeds:<26}{'naive':>12}{'modelkit':>12}")
    for label, key, fmt in rows:
        print(f"{label:<26}{fmt.format(naive[key]):>12}{fmt.format(ours[key]):>12}")
    if args.seeds > 1:
        sd = f"{naive['val_acc_sd']:.3f}", f"{ours['val_acc_sd']:.3f}"
        print(f"{'val accuracy, 1 sd':<26}{sd[0]:>12}{sd[1]:>12}")
    print(f"{'bare step on random data':<26}{'':>12}{bare:>12.1f}")
    print(f"{'minimal loop, crop + flip':<26}{'':>12}{minimal:>12.1f}")
    for key, value in ratios.items():
        print(f"{key:<26}{value:>24.2f}")
    out = {"args": {k: str(v) for k, v in vars(args).items()}, "naive": naive, "modelkit": ours}
    out["bare_step_images_per_second"] = bare
    out["minimal_loop_images_per_second"] = minimal
    if args.seeds > 1:
        out["runs"] = {"naive": naive_runs, "modelkit": our_runs}
    out["ratios"] = ratios
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
