"""benchmarks/bench_export.py keeps working: every format it is given is timed against PyTorch
with its accuracy beside it (fields only; speeds are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_export.py"


def test_bench_export_reports_speed_and_accuracy_of_each_format(trained_run, tmp_path):
    out = tmp_path / "export.json"
    exports = trained_run / "export"
    before = sorted(exports.iterdir()) if exports.exists() else []
    args = [str(trained_run), "--formats", "onnx,onnx-int8", "--threads", "1"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--seconds", "0.05", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads(out.read_text())["runs"][0]
    assert set(run["formats"]) == {"onnx", "onnx-int8", "onnx-int8-qdq"}
    assert run["formats"]["onnx"]["accuracy_change_points"] == 0.0
    speed = run["speed"]["1_threads"]
    for name in ("pytorch-fp32 (reference)", "onnx", "onnx-int8", "onnx-int8-qdq"):
        assert speed[name]["latency_ms_batch1"] > 0 and speed[name]["throughput_batch32"] > 0
    assert set(run["targets"]["onnx-int8 1_threads"]) == {"batch32", "batch1", "accuracy"}
    after = sorted(exports.iterdir()) if exports.exists() else []
    assert after == before  # the exports went to a temporary folder, not into the run
