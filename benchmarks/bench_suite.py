"""The public suite: ``auto`` at several budgets and every fixed recipe on each suite set.

Each cell (set, recipe, budget) is one ``python -m modelkit train SET --recipe R --time-budget
B`` process, as a user would run it, on a set built by ``benchmarks/suite/build.py`` (train/,
val/ and test/ folders, the split fixed by the build). The run evaluates its best weights on
test/ itself (``evaluation/test.json``); the table holds that test accuracy, the share of the
budget the process used, the path the recipe took (architecture, weights, image size, frozen
parts, epochs: from the run's config.json and plan.json, and auto's reasons from its log) and the
seconds. Fixed recipes get the same ``--time-budget``, so every recipe is judged at the same wall
time.

The full grid (10 sets x 3 budgets x 4 recipes) takes hours, so the script resumes: a cell
already in the results file is skipped, and each finished cell is written at once.

    python benchmarks/bench_suite.py --budgets 2m --recipes auto        # today's auto, 2 min
    python benchmarks/bench_suite.py --sets rsscn7,dtd10 --budgets 5m --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelkit.cli.common import EXIT_STOPPED  # noqa: E402
from modelkit.config.declare import parse_duration  # noqa: E402
from modelkit.recipes.presets import NAMES  # noqa: E402

SUITE_DIR = ROOT / "benchmarks" / "suite"
DEFAULT_DATA = Path("~/.cache/modelkit-suite").expanduser()
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "suite_cpu2.json"
PATH_KEYS = (
    "arch",
    "weights",
    "image_size",
    "freeze_backbone",
    "frozen_stages",
    "cache_frozen_stages",
    "head_epochs",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "scheduler",
)


def cell_key(set_name: str, recipe: str, budget_s: float) -> str:
    return f"{set_name}|{recipe}|{budget_s:g}"


def read_path(run_dir: Path) -> dict:
    """What the run did, from its folder: the settings that name a path, the planned epochs,
    and auto's reasons (its ``auto:`` and ``time budget`` log lines)."""
    config = json.loads((run_dir / "config.json").read_text())
    if config.get("ensemble_of"):  # auto's second model: the winner's and the runner-up's paths
        members = [read_path(run_dir.parent / name) for name in config["ensemble_of"]]
        return {"arch": "ensemble", "members": members, "why": members[0]["why"]}
    path = {k: config.get(k) for k in PATH_KEYS}
    plan_file = run_dir / "plan.json"
    if plan_file.is_file():
        plan = json.loads(plan_file.read_text())
        path["epochs"] = plan.get("epochs")  # what the budget left of the epochs asked
        path["plan"] = plan.get("summary")
    status = json.loads((run_dir / "status.json").read_text())
    path["epochs_run"] = status.get("epoch")
    log = (run_dir / "log.txt").read_text().splitlines() if (run_dir / "log.txt").is_file() else []
    path["why"] = [line.split("] ", 1)[-1] for line in log if "] auto:" in line]
    path["budget_log"] = [line.split("] ", 1)[-1] for line in log if "time budget" in line][-2:]
    return path


def describe(path: dict) -> str:
    """One short line for the table: 'efficientnet_lite0/imagenet 224px head 5 + 2 ep, ran 1'
    (epochs planned, of which the head's, and how many ran before the run ended); an ensemble
    run, its members' lines joined by '+'."""
    if path.get("members"):
        return "ensemble of " + " + ".join(f"({describe(m)})" for m in path["members"])
    frozen = ""
    if path.get("freeze_backbone"):
        frozen = " frozen"
    elif path.get("frozen_stages"):
        cached = " cached" if path.get("cache_frozen_stages") else ""
        frozen = f" {path['frozen_stages']} stages frozen{cached}"
    head_epochs = path.get("head_epochs") or 0
    head = f" head {head_epochs} +" if head_epochs else ""
    rest = (path.get("epochs") or 0) - head_epochs
    weights = str(path.get("weights"))
    if weights not in ("imagenet", "none"):  # a run's weights: auto continued its winner
        weights = f"continued from {Path(weights).name}"
    return (
        f"{path.get('arch')}/{weights} {path.get('image_size')}px{frozen}"
        f"{head} {rest} ep, ran {path.get('epochs_run') or 0}"
    )


def test_accuracy(run_dir: Path, env: dict) -> float | None:
    """The run's own test evaluation, else ``modelkit evaluate --split test`` (one process)."""
    saved = run_dir / "evaluation" / "test.json"
    if not saved.is_file():
        done = subprocess.run(
            [sys.executable, "-m", "modelkit", "evaluate", str(run_dir), "--split", "test"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
        )
        if done.returncode != 0 or not saved.is_file():
            return None
    return float(json.loads(saved.read_text())["accuracy"])


def run_cell(data: Path, recipe: str, budget_s: float, runs: Path, extra: list[str]) -> dict:
    """Train one cell in its own process and read its run folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "modelkit", "train", str(data), "--recipe", recipe]
    cmd += ["--time-budget", f"{budget_s:g}s", "--runs-dir", str(runs), *extra]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    lines = done.stdout.strip().splitlines()
    run_dir = Path(lines[-1]) if lines else None
    if done.returncode not in (0, EXIT_STOPPED) or run_dir is None or not run_dir.is_dir():
        tail = done.stderr.strip().splitlines()[-3:]
        return {"error": tail, "wall_s": round(wall, 1), "rc": done.returncode}
    status = json.loads((run_dir / "status.json").read_text())
    path = read_path(run_dir)
    return {
        "test_acc": test_accuracy(run_dir, env),
        "best_val_acc": (status.get("best") or {}).get("val_acc"),
        "wall_s": round(wall, 1),
        "budget_s": budget_s,
        "budget_share": round(wall / budget_s, 3),
        "state": status.get("state"),
        "reason": status.get("reason"),
        "budget_note": status.get("budget_note", ""),  # why it ended before 90% of its budget
        # what auto did with the time its winner left (longer run, runner-up), said on stderr
        "after_run": [
            line[len("note: ") :]
            for line in done.stderr.splitlines()
            if line.startswith("note: ") and not line.startswith("note: auto:")
        ],
        "load_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "path": describe(path),
        "details": path,
        "command": " ".join(cmd[1:]),
        "run_dir": str(run_dir),  # gone afterwards unless --runs-dir kept it
    }


def table(cells: dict) -> str:
    """The markdown table, one row per cell, sets in order."""
    rows = [
        "| set | recipe | budget | test acc | budget used | seconds | path |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(cells):
        c = cells[key]
        set_name, recipe, budget = key.split("|")
        if "error" in c:
            rows.append(f"| {set_name} | {recipe} | {budget} s | error | | | {c['error'][-1:]} |")
            continue
        acc = "" if c["test_acc"] is None else f"{c['test_acc']:.3f}"
        rows.append(
            f"| {set_name} | {recipe} | {budget} s | {acc} | {c['budget_share']:.0%} | "
            f"{c['wall_s']:.0f} | {c['path']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="built suite (build.py --out)")
    ap.add_argument("--sets", help="comma-separated set names (default: every built set)")
    ap.add_argument("--budgets", default="2m,5m,10m", help="comma-separated, e.g. 2m,5m")
    ap.add_argument("--recipes", default=",".join(NAMES), help=f"default: {','.join(NAMES)}")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help="results file (resumed)")
    ap.add_argument("--runs-dir", type=Path, help="keep the runs here (default: a temp folder)")
    ap.add_argument("--note", default="", help="recorded in the file: 'the CPU was shared'")
    ap.add_argument(
        "--extra", action="append", default=[], help="one more train flag: --extra=--seed=1"
    )
    args = ap.parse_args(argv)
    manifest = json.loads((SUITE_DIR / "manifest.json").read_text())
    names = args.sets.split(",") if args.sets else [s["name"] for s in manifest["sets"]]
    missing = [n for n in names if not (args.data / n / "suite_set.json").is_file()]
    if missing:
        ap.error(f"not built under {args.data}: {', '.join(missing)} (run suite/build.py)")
    budgets = [parse_duration(b) for b in args.budgets.split(",")]
    recipes = args.recipes.split(",")
    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    results.setdefault("cells", {})
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    if args.note:
        results["note"] = args.note
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs_dir or Path(scratch)
        for name in names:
            for budget in budgets:
                for recipe in recipes:
                    key = cell_key(name, recipe, budget)
                    if key in results["cells"]:
                        continue  # resume: this cell was measured before
                    print(f"{key} ...", file=sys.stderr, flush=True)
                    cell = run_cell(args.data / name, recipe, budget, runs, args.extra)
                    cell["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                    results["cells"][key] = cell
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(results, indent=1))
    print(table(results["cells"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
