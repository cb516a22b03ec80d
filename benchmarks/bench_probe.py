"""What `auto`'s backbone probe finds on each data set, and whether it picks the right one.

For every set: the probe's table (held-out accuracy of a linear head on each bundled backbone's
frozen features, from a sample of the training images; validation untouched), its winner, and,
as the check, each backbone's accuracy on the set's validation split with a head fitted on all
the training images the probe sampled. The probe chose well when its winner is the backbone
with the best validation accuracy, or within a point of it.

    python benchmarks/bench_probe.py ~/.cache/modelkit-suite/* --budget 300 \
        --json benchmarks/results/probe_suite_cpu2.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from modelkit import scan_dataset  # noqa: E402
from modelkit.recipes import probe  # noqa: E402

VAL_IMAGES = 600  # validation images embedded per set for the check


def check_on_val(train, val, report: probe.ProbeReport, seed: int) -> dict[str, float]:
    """Validation accuracy of a head fitted on the probe's sample, for each measured backbone."""
    labels = np.array([s.label for s in train])
    sample = probe.probe_sample(labels, seed, report.images)
    rng = np.random.default_rng(seed)
    val = [val[i] for i in sorted(rng.permutation(len(val))[:VAL_IMAGES])]
    out = {}
    for c in report.candidates:
        if c.heldout_accuracy is None:
            continue
        x, ok, _ = probe.embed([train[i].path for i in sample], c.arch, c.image_size)
        v, vok, _ = probe.embed([s.path for s in val], c.arch, c.image_size)
        head = probe.fit_linear_head(x, labels[sample][ok], int(labels.max()) + 1, seed)
        truth = np.array([s.label for s in val])[vok]
        out[c.arch] = round(float((head(v).argmax(1) == truth).mean()), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("sets", nargs="+", type=Path, help="data set folders (train/val or classes)")
    ap.add_argument(
        "--budget", type=float, default=300.0, help="the run's budget the probe sizes to"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    results = []
    for folder in args.sets:
        index = scan_dataset(folder, 0.2, 0.0, args.seed)
        train, val = index.splits.get("train", []), index.splits.get("val", [])
        report = probe.probe_backbones(
            [s.path for s in train], [s.label for s in train], args.budget, args.seed
        )
        val_acc = check_on_val(train, val, report, args.seed) if val else {}
        best = max(val_acc.values()) if val_acc else None
        row = {
            "set": folder.name,
            "train_images": len(train),
            "classes": len(index.classes),
            **report.to_dict(),
            "val_accuracy": val_acc,
            "winner_within_a_point_on_val": (
                best is not None and val_acc.get(report.winner, -1) >= best - 0.01
            ),
        }
        results.append(row)
        print(f"{folder.name}: {report.winner} ({report.why}); val {val_acc}", flush=True)
    out = {
        "what": "auto's backbone probe on each set, checked against validation accuracy",
        "budget_s": args.budget,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "sets": results,
        "winner_right": sum(r["winner_within_a_point_on_val"] for r in results),
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
