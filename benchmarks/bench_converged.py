"""Does auto's most chosen path gain from more epochs, or from seeds averaged? It decides what
``auto`` does with the time its winner leaves (modelkit/recipes/longer.py).

For each suite set: the last stage of EfficientNet-Lite1 on cached stage maps (auto's "last
stage on maps" race path over auto's own settings for the set), trained without a budget for
22 epochs (seed 0), 44 epochs (seed 0) and 22 epochs with seeds 1 and 2, then the seed runs
averaged as ensemble runs. Test accuracy on the set's given test split, validation accuracy as
the run keeps it. Accuracy only: the seconds are recorded but not the point.

    python benchmarks/bench_converged.py --sets dtd10,rsscn7 \
        --json benchmarks/results/converged_epochs_cpu2.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_suite import DEFAULT_DATA, test_accuracy  # noqa: E402

from modelkit.config import TrainConfig  # noqa: E402
from modelkit.recipes.resolve import resolve  # noqa: E402
from modelkit.runs.ensemble import build_ensemble_run  # noqa: E402
from modelkit.training.loop import Trainer  # noqa: E402

MAPS = dict(
    arch="efficientnet_lite1", image_size=240, weights="imagenet", freeze_backbone=False,
    frozen_stages=7, cache_frozen_stages=True, feature_passes=2, head_epochs=10, epochs=22,
    finetune_lr=1e-3, backbone_lr=1e-3, freeze_bn=True, eval_size=0, monitor="val_acc",
)  # fmt: skip
VARIANTS = {"22_s0": {}, "44_s0": {"epochs": 44}, "22_s1": {"seed": 1}, "22_s2": {"seed": 2}}
ENSEMBLES = {"ens_s0s1": ["22_s0", "22_s1"], "ens_s0s1s2": ["22_s0", "22_s1", "22_s2"]}


def measure_set(name: str) -> dict:
    data = str(DEFAULT_DATA / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = resolve("auto", {}, dataset=data, measure=False).settings
    runs = Path(tempfile.mkdtemp(prefix=f"converged-{name}-"))
    cell, dirs = {}, {}
    for variant, change in VARIANTS.items():
        settings = {**base, **MAPS, **change, "data_dir": data, "runs_dir": str(runs)}
        config = TrainConfig(**{**settings, "time_budget": 0.0, "early_stopping_patience": 0})
        started = time.perf_counter()
        result = Trainer(config).fit()
        dirs[variant] = result.run_dir
        cell[variant] = dict(
            test=test_accuracy(result.run_dir, env), val=result.best.get("val_acc"),
            wall=round(time.perf_counter() - started, 1), best_epoch=result.best.get("epoch"),
        )  # fmt: skip
        print(name, variant, cell[variant], flush=True)
    for ensemble, members in ENSEMBLES.items():
        run = build_ensemble_run([dirs[m] for m in members], runs, ensemble)
        cell[ensemble] = {"test": test_accuracy(run, env)}
        print(name, ensemble, cell[ensemble], flush=True)
    return cell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", required=True, help="comma-separated suite set names")
    parser.add_argument("--json", type=Path, required=True, help="results file (merged into)")
    args = parser.parse_args()
    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    for name in args.sets.split(","):
        results.setdefault("sets", {})[name] = measure_set(name)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
