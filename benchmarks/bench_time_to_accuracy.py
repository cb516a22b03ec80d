"""Time to accuracy: modelkit's ``auto`` recipe against the naive PyTorch loop, same time budget.

What a person feels is how long it takes to get a good model. Both sides get the same wall-clock
budget, counted from the dataset folder (scanning, decoding, training, evaluation) and run one
after the other, each in its own child process, on the same split:

- naive: the PyTorch transfer-learning tutorial's loop (as in bench_transfer.py): torchvision
  transforms every epoch, a DataLoader, fp32, SGD(lr 1e-3, momentum 0.9), StepLR(7, 0.1),
  batches of 4; from the bundled ImageNet weights of ``--arch`` (or from scratch with
  ``--weights none``). It trains epochs until the budget is spent, then evaluates.
- auto: ``modelkit train DATA --recipe auto --time-budget B`` (its TimeBudget callback fixes the
  epochs from the first batches and lays the schedule out to end on time).

Validation accuracy is recorded after every epoch against wall time since the start. Printed: the
accuracy of each at the budget, the time modelkit needs to reach the naive loop's final accuracy
as a fraction of the naive loop's time, budget vs actual wall time, and peak RSS of each child.

    python benchmarks/bench_time_to_accuracy.py ../shared/datasets/hymenoptera_data --budget 2m
    python benchmarks/bench_time_to_accuracy.py DATA --budget 90s --weights none --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transfer import time_to  # noqa: E402
from reference_loop import Folder, in_child, parse_sets, tutorial_transforms  # noqa: E402

from modelkit.config.declare import parse_duration  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run_auto(args, q) -> None:
    from modelkit import TrainConfig, Trainer
    from modelkit.events import EpochEnd, Message
    from modelkit.recipes import resolve_settings

    t0 = time.perf_counter()
    curve: list[tuple[float, float]] = []
    log: list[str] = []

    def listen(event):
        if isinstance(event, EpochEnd):
            curve.append((time.perf_counter() - t0, float(event.metrics.get("val_acc", 0.0))))
        elif isinstance(event, Message):
            log.append(event.text)

    explicit = {"time_budget": args.budget, "seed": args.seed, "val_ratio": args.val_ratio}
    if args.weights == "none":
        explicit["weights"] = "none"
    explicit |= parse_sets(args.set)  # trying a change to auto's choices: --set freeze_bn=true
    settings, note = resolve_settings(
        args.recipe, explicit, probe_network=False, data_dir=args.data
    )
    with tempfile.TemporaryDirectory() as scratch:
        runs = str(args.keep_runs) if args.keep_runs else scratch  # to inspect a run afterwards
        cfg = TrainConfig(data_dir=str(args.data), runs_dir=runs, tensorboard=False, **settings)
        result = Trainer(cfg, [listen]).fit()
    wall = time.perf_counter() - t0
    final = next((float(t.rsplit(" ", 1)[1]) for t in log if t.startswith("val accuracy")), None)
    q.put(
        {
            "val_acc": final if final is not None else (curve[-1][1] if curve else 0.0),
            "best_epoch_val_acc": max((a for _, a in curve), default=0.0),
            "wall_s": wall,
            "epochs": len(curve),
            "curve": curve,
            "state": result.state,
            "why": note.splitlines(),
            "log": log,
            "settings": {k: v for k, v in settings.items()},
            "peak_rss_mb": _peak_rss_mb(),
        }
    )


def run_naive(args, q) -> None:
    """The tutorial's loop, epochs until the budget is spent (checked every batch)."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from modelkit import scan_dataset
    from modelkit.models.registry import build_model, load_starting_weights, normalisation

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    index = scan_dataset(args.data, args.val_ratio, 0.0, args.seed)
    train_tf, val_tf = tutorial_transforms(args.image_size, normalisation(args.arch))
    train = DataLoader(
        Folder(index.splits["train"], train_tf), 4, shuffle=True, num_workers=args.workers
    )
    val = DataLoader(Folder(index.splits["val"], val_tf), 4, num_workers=args.workers)
    model = build_model(args.arch, len(index.classes))
    if args.weights == "imagenet":
        load_starting_weights(model, args.arch, "imagenet")
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1)
    loss_fn = nn.CrossEntropyLoss()

    def accuracy() -> float:
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in val:
                correct += int((model(x).argmax(1) == y).sum())
                total += len(y)
        return correct / max(total, 1)

    curve: list[tuple[float, float]] = []
    out_of_time = False
    while not out_of_time:
        model.train()
        for x, y in train:
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            if time.perf_counter() - t0 >= args.budget:
                out_of_time = True
                break
        sched.step()
        acc = accuracy()  # the time is read after the evaluation: it is part of the wait
        curve.append((time.perf_counter() - t0, acc))
    wall = time.perf_counter() - t0
    q.put(
        {
            "val_acc": curve[-1][1],
            "best_epoch_val_acc": max(a for _, a in curve),
            "wall_s": wall,
            "epochs": len(curve),
            "curve": curve,
            "state": "finished",
            "settings": {"arch": args.arch, "weights": args.weights, "batch_size": 4, "lr": 1e-3},
            "peak_rss_mb": _peak_rss_mb(),
        }
    )


def compare(naive: dict, auto: dict, budget: float) -> dict:
    """The numbers the benchmark is for."""
    reached = time_to(auto["curve"], naive["val_acc"])
    return {
        "budget_s": budget,
        "naive_val_acc": naive["val_acc"],
        "auto_val_acc": auto["val_acc"],
        "auto_time_to_naive_final_acc_s": reached,
        "auto_time_to_naive_final_acc_share": reached / naive["wall_s"] if reached else None,
        "naive_wall_over_budget": naive["wall_s"] / budget,
        "auto_wall_over_budget": auto["wall_s"] / budget,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--budget", type=parse_duration, default=120.0, help="e.g. 90s, 2m, 15m")
    ap.add_argument("--weights", choices=("imagenet", "none"), default="imagenet")
    ap.add_argument("--arch", default="efficientnet_lite0", help="the naive loop's network")
    ap.add_argument("--image-size", type=int, default=224, help="the naive loop's image size")
    ap.add_argument("--workers", type=int, default=2, help="naive DataLoader workers")
    ap.add_argument("--val-ratio", type=float, default=0.2, help="for folders without val/")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="default: benchmarks/results/time_to_accuracy.json")
    ap.add_argument("--auto-only", action="store_true", help="skip the naive loop (no ratios)")
    ap.add_argument("--set", action="append", help="NAME=JSON: a setting auto does not choose")
    ap.add_argument("--recipe", default="auto", help="modelkit's side: auto or a fixed recipe")
    ap.add_argument("--keep-runs", type=Path, help="keep modelkit's run folder under DIR")
    args = ap.parse_args(argv)
    if args.weights == "none" and args.arch == "efficientnet_lite0":
        args.arch = "resnet18"  # the tutorial's network when nothing is pretrained

    if args.auto_only:  # trying recipes: the naive side is the same every time
        auto = in_child(run_auto, args)
        print(f"auto: val acc {auto['val_acc']:.4f} best epoch {auto['best_epoch_val_acc']:.4f}")
        print(
            f"{auto['epochs']} epochs, {auto['wall_s']:.1f} s ({auto['wall_s'] / args.budget:.3f})"
        )
        print("\n".join(auto["why"] + [t for t in auto["log"] if "budget" in t]))
        if args.json:
            args.json.write_text(json.dumps({"auto": auto}, indent=2))
        return 0
    print(f"running naive ({args.budget:g} s) ...", file=sys.stderr, flush=True)
    naive = in_child(run_naive, args)
    print(f"running auto ({args.budget:g} s) ...", file=sys.stderr, flush=True)
    auto = in_child(run_auto, args)
    summary = compare(naive, auto, args.budget)

    print(f"\n{args.data}, budget {args.budget:g} s, weights {args.weights}")
    print("timings on a shared machine: other work may have run at the same time")
    print(f"{'side':<8}{'val acc':>9}{'epochs':>8}{'wall s':>9}{'/budget':>9}{'peak RSS MB':>13}")
    for name, r in (("naive", naive), ("auto", auto)):
        print(
            f"{name:<8}{r['val_acc']:>9.4f}{r['epochs']:>8}{r['wall_s']:>9.1f}"
            f"{r['wall_s'] / args.budget:>9.3f}{r['peak_rss_mb']:>13.0f}"
        )
    share = summary["auto_time_to_naive_final_acc_share"]
    reach = "never" if share is None else f"{share:.2f} of the naive loop's time"
    print(f"auto reached the naive loop's final accuracy in {reach}")
    for line in auto["why"]:
        print(f"  {line}")
    out = {"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary}
    out.update(naive=naive, auto=auto)
    path = args.json or RESULTS / "time_to_accuracy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
