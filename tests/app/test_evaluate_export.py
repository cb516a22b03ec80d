"""AppTest of the Evaluate page's Export tab: export in the background, see the parity table,
download the file and its model card."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime")

EVALUATE = "app_pages/evaluate.py"


def _values(at) -> list[str]:
    """Every cell of every table on the page, as text."""
    return [str(v) for df in at.dataframe for v in df.value.to_numpy().ravel()]


def _wait_for_export(at, timeout: float = 300.0) -> None:
    """Rerun the page until the background export has ended (its progress note is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run(timeout=60)
        if not any(i.value.startswith("Exporting to") for i in at.info):
            return
        time.sleep(1.0)
    raise AssertionError("the export did not finish in time")


def test_export_tab_exports_onnx_then_shows_its_proof_and_downloads(open_page, run_dir):
    at = open_page(EVALUATE)
    assert not at.exception
    assert not [b for b in at.download_button if b.key == "evaluate_export_download"]
    at.selectbox(key="evaluate_export_format").set_value("onnx").run()
    assert any("has no ONNX (fp32) export yet" in c.value for c in at.caption)
    at.button(key="evaluate_export_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    _wait_for_export(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (run_dir / "export" / "model.onnx").is_file()
    cells = _values(at)
    assert "Top-1 agreement with PyTorch" in cells and "100.0%" in cells
    assert "Accuracy change" in cells and "+0.0 points" in cells
    assert any(str(v).startswith("Latency, 1 image") for v in cells)
    download = at.download_button(key="evaluate_export_download")
    assert download.proto.label == "Download model.onnx"
    assert at.download_button(key="evaluate_export_card").proto.label == ("Download the model card")


def test_an_existing_export_is_shown_at_once_and_a_zip_is_offered_for_openvino(open_page, run_dir):
    pytest.importorskip("openvino")
    from modelkit.serving.export import export_run

    export_run(run_dir, "openvino", timing=False)
    at = open_page(EVALUATE)
    at.selectbox(key="evaluate_export_format").set_value("openvino").run()
    assert not at.exception and not at.error
    assert "Top-1 agreement with PyTorch" in _values(at)
    assert not any("Latency, 1 image" == v for v in _values(at))  # exported without timing
    label = at.download_button(key="evaluate_export_download").proto.label
    assert label == "Download model.openvino.zip"


def test_a_refused_export_shows_why_with_its_table_and_leaves_no_file(
    open_page, run_dir, monkeypatch
):
    from modelkit.serving import parity

    # stand in for a quantised model that lost accuracy: this run's tiny model cannot be
    # trusted to lose it on cue, and the refusal itself is what the page must show
    monkeypatch.setattr(parity, "accuracy_drop_points", lambda table: 12.5)
    at = open_page(EVALUATE)
    at.selectbox(key="evaluate_export_format").set_value("onnx-int8")
    at.number_input(key="evaluate_export_max_drop").set_value(2.0)
    at.button(key="evaluate_export_start").click().run()
    _wait_for_export(at)
    errors = [e.value for e in at.error]
    assert errors and "accuracy fell 12.5 points, more than the 2 allowed" in errors[0]
    assert "Top-1 agreement with PyTorch" in _values(at)
    assert not (run_dir / "export" / "model.int8.onnx").exists()
    assert not [b for b in at.download_button if b.key == "evaluate_export_download"]
