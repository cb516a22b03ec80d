"""AppTest of the Evaluate, Classify and Runs pages against a real tiny trained run."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import make_colour_dataset

from modelkit.evaluation.metrics import load_evaluation
from modelkit.runs.store import RunStore, run_state
from studio.state import RUN_KEY, job_registry
from tests.app.conftest import frame, no_exception

pytestmark = pytest.mark.slow

EVALUATE, CLASSIFY, RUNS = "app_pages/evaluate.py", "app_pages/classify.py", "app_pages/runs.py"


def image_captions(at) -> list[str]:
    return [c for img in at.image for c in img.captions]


# -- Evaluate -------------------------------------------------------------------------------------


def test_evaluate_without_runs_points_to_training(open_page):
    at = open_page(EVALUATE)
    no_exception(at)
    assert "No finished run" in at.info[0].value
    assert any(link.proto.page.endswith("train") for link in at.page_link)


def test_evaluate_shows_metrics_tables_cell_images_and_curves(open_page, run_dir):
    ev = load_evaluation(run_dir, "val")
    at = open_page(EVALUATE)
    no_exception(at)
    assert at.selectbox(key="evaluate_run").value == str(run_dir)
    assert at.session_state[RUN_KEY] == str(run_dir)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Val accuracy"] == f"{ev.accuracy:.1%}"  # the run has no TTA
    assert metrics["Top-5 accuracy"] == f"{ev.top5:.1%}"  # five classes
    assert metrics["Macro F1"] == f"{ev.macro['f1']:.3f}"

    per_class = frame(at, "precision")
    assert list(per_class["class"][: len(ev.classes)]) == ev.classes
    assert list(per_class["support"][: len(ev.classes)]) == [r["support"] for r in ev.per_class]

    # The fallback cell pickers: choose the fullest cell of the confusion matrix.
    cm, n = ev.confusion_matrix, len(ev.classes)
    t, p = max(((i, j) for i in range(n) for j in range(n)), key=lambda c: cm[c[0]][c[1]])
    true, pred = ev.classes[t], ev.classes[p]
    at.selectbox(key="evaluate_cell_true").set_value(true)
    at.selectbox(key="evaluate_cell_pred").set_value(pred).run()
    no_exception(at)
    expected = [r for r in ev.predictions if r["true"] == true and r["predicted"] == pred]
    assert len(expected) == cm[t][p] > 0
    cell_captions = [c for c in image_captions(at) if c.startswith(f"{true} → {pred} (p=")]
    assert len(cell_captions) >= len(expected)  # the gallery may show some of them again
    assert any(m.value.startswith(f"**{len(expected)} {true} image") for m in at.markdown)

    # Training curves tab: both figures are drawn (plotly charts have no typed AppTest element).
    assert len(at.get("plotly_chart")) >= 3  # confusion matrix + loss + accuracy


def test_evaluate_gallery_filters_and_a_missing_file_is_named(open_page, run_dir):
    ev = load_evaluation(run_dir, "val")
    # Break one image path in the saved predictions: the page must name it, not crash.
    csv = run_dir / "evaluation" / "predictions_val.csv"
    victim = ev.predictions[0]["path"]
    csv.write_text(csv.read_text().replace(victim, victim + ".gone"))
    at = open_page(EVALUATE)
    at.radio(key="evaluate_gallery_which").set_value("all").run()
    no_exception(at)
    assert any("1–" in c.value and f"{len(ev.predictions)} images" in c.value for c in at.caption)
    assert any("file not found" in c.value for c in at.caption)

    at.radio(key="evaluate_gallery_which").set_value("correct").run()
    at.multiselect(key="evaluate_gallery_classes").set_value([ev.classes[0]]).run()
    no_exception(at)
    n = sum(1 for p in ev.predictions if p["correct"] and p["true"] == ev.classes[0])
    captions = at.caption
    assert any(f"{n} images" in c.value for c in captions) or any(
        "No image matches" in c.value for c in captions
    )


def test_evaluate_now_when_no_saved_evaluation(open_page, run_dir):
    shutil.rmtree(run_dir / "evaluation")
    at = open_page(EVALUATE)
    no_exception(at)
    assert not at.metric
    at.button(key="evaluate_now").click().run()
    no_exception(at)
    assert (run_dir / "evaluation" / "val.json").is_file()
    assert "Val accuracy" in [m.label for m in at.metric]


# -- Classify -------------------------------------------------------------------------------------


def test_classify_uploads_images_and_names_a_bad_file(open_page, run_dir, png):
    at = open_page(CLASSIFY)
    no_exception(at)
    uploader = at.file_uploader(key="classify_files")
    assert uploader.accept_multiple_files and uploader.allowed_type == []
    assert at.slider(key="classify_top_k").value == 5
    uploader.set_value(
        [
            ("red.png", png((220, 40, 40)), "image/png"),
            ("notes.jpg", b"this is not an image", "image/jpeg"),
            ("blue.png", png((40, 60, 220)), "image/png"),
        ]
    )
    at.run()
    no_exception(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "notes.jpg" in errors[0]
    table = frame(at, "top label")
    assert list(table["file"]) == ["red.png", "blue.png"]
    classes = json.loads((run_dir / "classes.json").read_text())
    assert set(table["top label"]) <= set(classes)
    assert all(0 < c <= 1 for c in table["confidence"])
    assert all(len(t.split(", ")) == 5 for t in table["top-k"])
    assert at.download_button(key="classify_download").proto.label.startswith("Download")
    assert [c.split(" · ")[0] for c in image_captions(at)] == ["red.png", "blue.png"]

    at.slider(key="classify_top_k").set_value(2).run()
    no_exception(at)
    table = frame(at, "top label")
    assert all(len(t.split(", ")) == 2 for t in table["top-k"])


def test_classify_without_models(open_page):
    at = open_page(CLASSIFY)
    no_exception(at)
    assert "No trained model" in at.info[0].value
    assert not at.file_uploader


# -- Runs -----------------------------------------------------------------------------------------


def test_runs_empty_state_links_to_dataset(open_page):
    at = open_page(RUNS)
    no_exception(at)
    assert "No runs yet" in at.info[0].value
    # the Dataset page is the app's default: its address is the root, so the link names no path
    dataset = [link for link in at.page_link if "Dataset page" in link.proto.label]
    assert dataset and dataset[0].proto.page_script_hash and dataset[0].proto.page == ""


def test_runs_table_lists_the_run_and_compare_draws(open_page, run_dir):
    at = open_page(RUNS)
    no_exception(at)
    table = frame(at, "architecture")
    assert list(table["run"]) == [run_dir.name]
    row = table.iloc[0]
    assert row["status"].endswith("finished") and row["architecture"] == "resnet18"
    assert row["epochs"] == "2/2"
    assert at.multiselect(key="runs_compare").value == [run_dir.name]
    assert len(at.get("plotly_chart")) == 2
    assert at.download_button(key="runs_download").proto.label.startswith("Download best.pt")
    assert at.button(key="runs_resume").disabled  # finished: nothing to resume


def test_runs_delete_after_confirmation(open_page, run_dir, another_copy):
    doomed = another_copy("copy")
    at = open_page(RUNS)
    assert len(frame(at, "architecture")) == 2
    at.selectbox(key="runs_manage").set_value(str(doomed)).run()
    at.button(key="runs_delete").click().run()
    no_exception(at)
    assert doomed.is_dir()  # nothing happens before the confirmation
    assert any(doomed.name in w.value for w in at.warning)

    at.button(key="runs_delete_cancel").click().run()
    assert doomed.is_dir()
    assert not [b for b in at.button if b.key == "runs_delete_confirm"]

    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_confirm").click().run()
    no_exception(at)
    assert not doomed.exists()
    assert run_dir.is_dir()
    assert list(frame(at, "architecture")["run"]) == [run_dir.name]
    assert any(f"Deleted run {doomed.name}" in s.value for s in at.success)


def test_runs_resume_an_interrupted_run(open_page, interrupted_run):
    run_dir = interrupted_run
    assert run_state(run_dir)["state"] == "interrupted"
    at = open_page(RUNS)
    no_exception(at)
    assert frame(at, "architecture").iloc[0]["status"].endswith("interrupted")
    resume = at.button(key="runs_resume")
    assert not resume.disabled
    resume.click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    job = job_registry().current
    assert job is not None and job.name == run_dir.name
    job.join(120)
    assert job.snapshot().state == "finished"
    assert any(run_dir.name in s.value for s in at.success)
    assert any(link.proto.page.endswith("train") for link in at.page_link)
    assert RunStore(run_dir.parent).get(run_dir).state == "finished"


def test_runs_resume_refused_while_another_job_runs(open_page, interrupted_run, app_dirs):
    from modelkit.config import TrainConfig
    from modelkit.runs.store import wait_until

    data = make_colour_dataset(app_dirs["data"] / "colours")  # inside the allowed roots
    config = TrainConfig.load(interrupted_run / "config.json").replace(
        epochs=500, runs_dir=str(app_dirs["runs"]), run_name="busy", data_dir=str(data)
    )
    busy = job_registry().launch(config)
    try:
        assert wait_until(lambda: bool(busy.snapshot().run_dir), timeout=60)
        at = open_page(RUNS)
        at.selectbox(key="runs_manage").set_value(str(interrupted_run)).run()
        at.button(key="runs_resume").click().run()
        no_exception(at)
        errors = [e.value for e in at.error]
        assert any(busy.name in e and "still running" in e for e in errors), errors
        assert job_registry().current is busy
    finally:
        busy.stop()
        busy.join(60)
