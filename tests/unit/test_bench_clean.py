"""benchmarks/bench_clean.py still runs end to end, leaves the dataset alone and writes its JSON
(no speed is checked: machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_bench_clean_flips_a_copy_and_reports_precision(tmp_path, helpers):
    data = helpers.write_dataset(tmp_path / "data", num_classes=3, per_class=10)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    out = tmp_path / "clean.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_clean.py"), str(data),
         "--source", "pixels", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["images"] == 30 and result["flipped"] == 3
    assert result["precision_at_flipped"] == 1.0  # colour classes: every flip is obvious
    assert result["seconds_total"] > 0
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
