"""Label-issue finder: flip 10% of a dataset's labels (seeded) in a copy, run the finder, and
report precision at the number of flipped images and the time it took.

The copy goes to a temporary folder (the original is never touched); a flipped image is moved
to another class folder of the same split, which is exactly what a mislabelled photo looks like.

    python benchmarks/bench_clean.py ../shared/datasets/hymenoptera_data
    python benchmarks/bench_clean.py DATA --fraction 0.1 --seed 0 --source pretrained
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelkit import scan_dataset  # noqa: E402
from modelkit.cleaning.features import PRETRAINED  # noqa: E402
from modelkit.cleaning.finder import find_issues  # noqa: E402


def flip_labels(root: Path, fraction: float, seed: int) -> set[str]:
    """Move ``fraction`` of the images (seeded) to a random other class folder of their split;
    returns the new paths of the flipped images."""
    index = scan_dataset(root, seed=seed)
    rows = index.all_samples()
    rng = random.Random(seed)
    chosen = rng.sample(range(len(rows)), round(fraction * len(rows)))
    flipped = set()
    for r in chosen:
        path = Path(rows[r][1].path)
        old = index.classes[rows[r][1].label]
        new = rng.choice([c for c in index.classes if c != old])
        folder = path.parent.parent / new if path.parent.name == old else None
        if folder is None:  # an image in a sub-folder of its class: put it at the class's top
            rel = path.relative_to(root).parts
            at = rel.index(old)
            folder = root.joinpath(*rel[:at], new)
        dst = folder / f"flipped-{r}-{path.name}"
        os.replace(path, dst)
        flipped.add(str(dst))
    return flipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--source", default=PRETRAINED)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    data = Path(args.data).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-clean-") as tmp:
        copy = Path(tmp) / data.name
        shutil.copytree(data, copy)
        flipped = flip_labels(copy, args.fraction, args.seed)
        start = time.perf_counter()
        report = find_issues(copy, args.source, args.folds, seed=args.seed)
        seconds = time.perf_counter() - start
    k = len(flipped)
    top = [i.path for i in report.issues[:k]]
    hits = sum(p in flipped for p in top)
    flagged = report.flagged
    result = {
        "dataset": data.name,
        "images": len(report.issues),
        "flipped": k,
        "fraction": args.fraction,
        "seed": args.seed,
        "folds": args.folds,
        "source": report.source,
        "precision_at_flipped": round(hits / k, 3) if k else None,
        "flagged": len(flagged),
        "flagged_precision": round(sum(i.path in flipped for i in flagged) / len(flagged), 3)
        if flagged
        else None,
        "flagged_recall": round(sum(i.path in flipped for i in flagged) / k, 3) if k else None,
        "near_duplicate_groups": len(report.groups),
        "seconds_total": round(seconds, 1),
        "cpu_threads": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    out = (
        Path(args.json)
        if args.json
        else (Path(__file__).parent / "results" / f"clean_{data.name}_seed{args.seed}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
