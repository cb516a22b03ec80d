"""AppTest: Grad-CAM overlays and "unknown" on Classify, calibration and overlays on Evaluate."""

from __future__ import annotations

import pytest

from modelkit.evaluation import calibration as cal
from modelkit.models.checkpoint import load_checkpoint
from modelkit.runs.folder import RunFolder
from tests.app.conftest import no_exception

pytestmark = pytest.mark.slow

EVALUATE, CLASSIFY = "app_pages/evaluate.py", "app_pages/classify.py"


def captions(at) -> list[str]:
    return [c for img in at.image for c in img.captions]


def test_classify_draws_grad_cam_with_an_opacity_slider_and_says_unknown(open_page, run_dir, png):
    cal.set_threshold(run_dir, 1.0)  # nothing is sure enough
    at = open_page(CLASSIFY)
    no_exception(at)
    assert not at.get("camera_input")  # the browser is not asked for the camera up front
    at.file_uploader(key="classify_files").set_value(
        [
            ("red.png", png((220, 40, 40)), "image/png"),
            ("blue.png", png((40, 60, 220)), "image/png"),
        ]
    )
    at.run()
    no_exception(at)
    assert all("Grad-CAM for" in c for c in captions(at)) and len(captions(at)) == 2
    slider = at.slider(key="classify_cam_opacity")
    assert slider.value == 0.5
    slider.set_value(0.9).run()
    no_exception(at)
    table = next(df.value for df in at.dataframe if "answer" in df.value.columns)
    assert list(table["answer"]) == ["unknown", "unknown"]
    assert all(label for label in table["top label"])  # the best guess is still there
    assert sum("**unknown**" in m.value for m in at.markdown) == 2
    at.toggle(key="classify_cam").set_value(False).run()
    no_exception(at)
    assert captions(at) == ["red.png", "blue.png"]
    assert not [s for s in at.slider if s.key == "classify_cam_opacity"]
    at.toggle(key="classify_webcam").set_value(True).run()
    no_exception(at)
    assert at.get("camera_input")


def test_evaluate_calibration_tab_and_threshold(open_page, run_dir):
    report = cal.load_report(run_dir)
    at = open_page(EVALUATE)
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Temperature"] == f"{report['temperature']:.2f}"
    assert metrics["Confidence gap (ECE)"] == f"{report['ece_after']:.3f}"
    slider = at.slider(key=f"calibration_threshold_{run_dir.name}")
    slider.set_value(0.42).run()
    at.button(key="calibration_save").click().run()
    no_exception(at)
    record = load_checkpoint(run_dir / "checkpoints" / "best.pt")["calibration"]
    assert record["threshold"] == pytest.approx(0.42)
    assert cal.load_report(run_dir)["threshold"] == pytest.approx(0.42)


def test_evaluate_calibrates_an_old_run_on_demand(open_page, run_dir):
    RunFolder(run_dir).calibration.unlink()
    at = open_page(EVALUATE)
    no_exception(at)
    assert any("not calibrated" in i.value for i in at.info)
    at.button(key="calibration_run").click().run()
    no_exception(at)
    assert cal.load_report(run_dir) is not None
    assert "Temperature" in [m.label for m in at.metric]


def test_evaluate_galleries_draw_grad_cam_overlays(open_page, run_dir):
    at = open_page(EVALUATE)
    at.radio(key="evaluate_gallery_which").set_value("all").run()
    before = len(captions(at))
    at.toggle(key="evaluate_gallery_cam").set_value(True).run()
    no_exception(at)
    assert at.slider(key="evaluate_gallery_cam_opacity").value == 0.5
    assert len(captions(at)) == before  # the same images, now with their maps
    at.toggle(key="evaluate_cell_cam").set_value(True).run()
    at.slider(key="evaluate_cell_cam_opacity").set_value(0.2).run()
    no_exception(at)
