"""``auto`` with its race against ``auto`` without (MODELKIT_AUTO_RACE=0), same command otherwise.

Each cell is one ``python -m modelkit train SET --recipe auto --time-budget B`` process on a set
built by ``benchmarks/suite/build.py`` (bench_suite.run_cell: test accuracy from the run's own
test evaluation, wall seconds, the path taken); with the race on, the race's table, winner and
seconds come from the run's auto_search.json. The machine's load average is recorded before and
after each cell: on a shared CPU it moves every timing.

    python benchmarks/bench_race.py --sets hymenoptera,chest_xray --budget 5m
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_suite import DEFAULT_DATA, run_cell  # noqa: E402

from modelkit.config.declare import parse_duration  # noqa: E402

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "race_auto_5m_cpu2.json"


def race_of(run_dir: str | None) -> dict | None:
    """The race auto ran for this run (auto_search.json), or None."""
    if not run_dir:
        return None
    search = Path(run_dir) / "auto_search.json"
    if not search.is_file():
        return None
    race = json.loads(search.read_text()).get("race") or {}
    keys = ("winner", "why", "seconds", "allowance", "skipped", "images", "heldout", "table")
    return {k: race.get(k) for k in keys} if race else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="hymenoptera,chest_xray")
    ap.add_argument("--budget", default="5m")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)
    budget = parse_duration(args.budget)
    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared"
    results.setdefault("machine", machine)
    cells = results.setdefault("cells", {})
    for name in args.sets.split(","):
        for race in ("1", "0"):
            key = f"{name}|race={race}|{budget:g}"
            if key in cells:
                continue
            os.environ["MODELKIT_AUTO_RACE"] = race
            load_before = os.getloadavg()
            with tempfile.TemporaryDirectory(prefix="bench-race-") as runs:
                cell = run_cell(args.data / name, "auto", budget, Path(runs), ["--device", "cpu"])
                cell["race"] = race_of(cell.get("run_dir"))
            cell["load_before_after"] = [round(load_before[0], 1), round(os.getloadavg()[0], 1)]
            cells[key] = cell
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1))
            won = (cell.get("race") or {}).get("winner") or "-"
            print(f"{key}: test {cell.get('test_acc')} in {cell.get('wall_s')} s, winner {won}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
