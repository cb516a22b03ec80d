"""benchmarks/bench_label.py still runs end to end on a tiny generated folder and writes every
field its result files are read for (no speed or accuracy is checked: machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_bench_label_writes_efficiency_layout_and_speed(tmp_path, helpers):
    data = helpers.write_dataset(tmp_path / "data", num_classes=2, per_class=12, size=(40, 40))
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    args = ["--set", f"tiny={data}", "--parts", "efficiency,layout,speed", "--seeds", "2",
            "--budgets", "2,5", "--speed-data", str(data), "--speed-images", "10",
            "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_label.py"), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    eff = json.loads((tmp_path / "out" / "label_efficiency_cpu2.json").read_text())
    tiny = eff["sets"]["tiny"]
    assert set(eff["strategy"]) == {"EXPLORE_SHARE", "POOL_PER_ASK"}  # how the tool asked
    for side in ("active", "random"):
        assert set(tiny["curves"][side]) == {"2", "5"}
        assert all(0 <= v["mean"] <= 1 for v in tiny["curves"][side].values())
    lay = json.loads((tmp_path / "out" / "label_layout_cpu2.json").read_text())["sets"]["tiny"]
    assert 0 <= lay["tsne"]["knn5_accuracy_2d"] <= 1 and lay["pca"]["seconds"] >= 0
    speed = json.loads((tmp_path / "out" / "label_speed_cpu2.json").read_text())
    assert speed["embed_and_map"][0]["images"] == 10 and speed["embed_and_map"][0]["peak_rss_mb"]
    assert speed["suggest_round"]["round_after_a_new_label_seconds"] > 0
    # the default engine beside the naive PyTorch reference, on the same images
    assert [r["engine"] for r in speed["embed_and_map"]] == ["auto", "pytorch"]
    assert speed["embed_and_map"][-1]["speedup_of_auto"] > 0
    assert "tsne_1000" in lay and 0 <= lay["tsne_1000"]["trustworthiness"] <= 1
    labeller = speed["labeller_round"]  # the whole round a person waits for, nothing re-embedded
    assert labeller["images"] == 24 and labeller["embedded_again"] == 0
    assert labeller["round_after_a_new_label_seconds"] > 0
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before  # nothing written there
