"""``evaluate`` prints the classification report with top-1 and, from 5 classes on, top-5."""

from __future__ import annotations

import re

from modelkit.cli.main import main
from modelkit.training.loop import Trainer


def test_evaluate_prints_report_top1_and_top5(make_dataset, make_config, capsys):
    data = make_dataset("five", num_classes=5, per_class=6)
    run_dir = Trainer(make_config(data_dir=data, epochs=1, tensorboard=False)).fit().run_dir
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^accuracy\s+\d\.\d{4}$", out, re.M)  # top-1
    assert re.search(r"^top-5\s+1\.0000$", out, re.M)  # 5 classes: the true one is always in
    assert re.search(r"^class\s+precision\s+recall\s+f1\s+support$", out, re.M)
    for name in ("red", "green", "blue", "yellow", "purple", "macro avg", "weighted avg"):
        assert re.search(rf"^{name}\s+\d", out, re.M), name
    assert "confusion matrix" in out
