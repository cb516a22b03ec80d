"""AppTest of the Runs page's export: pick a format, export (checked), download the file."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")

RUNS = "app_pages/runs.py"


def test_runs_export_to_onnx_offers_the_checked_file(open_page, run_dir):
    at = open_page(RUNS)
    assert not at.exception
    assert not [b for b in at.download_button if b.key == "runs_export_download"]
    at.selectbox(key="runs_export_format").set_value("onnx").run()
    at.button(key="runs_export").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert (run_dir / "export" / "model.onnx").is_file()
    assert (run_dir / "export" / "model_card.json").is_file()
    button = at.download_button(key="runs_export_download")
    assert button.proto.label == "Download model.onnx"
    assert any("Largest logit difference from PyTorch on" in c.value for c in at.caption)


def test_runs_page_shows_the_command_that_serves_the_run(open_page, run_dir):
    at = open_page(RUNS)
    assert not at.exception
    assert [c.value for c in at.code if c.value.startswith("modelkit serve")] == [
        f"modelkit serve {run_dir}"
    ]
