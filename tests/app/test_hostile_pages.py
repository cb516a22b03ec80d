"""Issue 16 through the pages (AppTest): folders outside the allowed roots are refused on Train,
Tune and the learning-rate finder; one training at a time whatever starts it; a resume whose
checkpoint is refused shows the failure alone; a delete names the folder it removes."""

from __future__ import annotations

import threading

from conftest import make_colour_dataset
from PIL import Image

from studio.state import job_registry

TRAIN, TUNE, RUNS = "app_pages/train.py", "app_pages/tune.py", "app_pages/runs.py"


def errors(at) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def _dataset_box(at):
    return next(w for w in at.text_input if w.label == "Dataset folder")


def _button(at, text):
    return next(b for b in at.button if text in b.label)


def test_train_refuses_a_dataset_outside_the_allowed_roots(open_page, tmp_path):
    outside = make_colour_dataset(tmp_path / "outside", per_class=3)
    at = open_page(TRAIN)
    _dataset_box(at).set_value(str(outside)).run()
    next(w for w in at.selectbox if w.label == "Starting weights").set_value(
        "Random (from scratch)"
    )
    _button(at, "Launch training").click().run()
    shown = "\n".join(errors(at))
    assert "outside the folders this app may open" in shown and str(outside) in shown
    assert job_registry().current is None


def test_the_lr_finder_refuses_an_outside_folder_and_waits_for_a_running_job(
    open_page, tmp_path, app_dirs
):
    outside = make_colour_dataset(tmp_path / "outside", per_class=3)
    at = open_page(TRAIN)
    _dataset_box(at).set_value(str(outside)).run()
    _button(at, "Find a learning rate").click().run()
    assert any("outside the folders" in e for e in errors(at))

    inside = make_colour_dataset(app_dirs["data"] / "colours", per_class=3)
    done = threading.Event()
    job_registry().start_other("search busy", lambda: None, lambda: not done.is_set())
    try:
        _dataset_box(at).set_value(str(inside)).run()
        _button(at, "Find a learning rate").click().run()
        assert any("search busy is still running" in e for e in errors(at))
    finally:
        done.set()


def test_tune_refuses_an_outside_folder_and_a_search_while_training(open_page, tmp_path, app_dirs):
    outside = make_colour_dataset(tmp_path / "outside", per_class=3)
    at = open_page(TUNE)
    _dataset_box(at).set_value(str(outside))
    _button(at, "Start search").click().run()
    assert any("outside the folders" in e for e in errors(at))

    inside = make_colour_dataset(app_dirs["data"] / "colours", per_class=3)
    done = threading.Event()
    job_registry().start_other("training job busy", lambda: None, lambda: not done.is_set())
    try:
        _dataset_box(at).set_value(str(inside))
        _button(at, "Start search").click().run()
        assert any("training job busy is still running" in e for e in errors(at))
        from app_pages._tune_state import tune_registry

        assert tune_registry().current is None
    finally:
        done.set()


def test_a_resume_whose_checkpoint_is_refused_shows_no_success(open_page, interrupted_run):
    last = interrupted_run / "checkpoints" / "last.pt"
    damaged = last.read_bytes()[:4000]
    last.unlink()  # a hard link to the session's run: replace it, never write through it
    last.write_bytes(damaged)
    at = open_page(RUNS)
    errors(at)
    _button(at, "Resume training").click().run()
    shown = "\n".join(errors(at))
    assert f"Could not resume {interrupted_run.name}" in shown and "last.pt" in shown
    assert not [s.value for s in at.success]


def test_the_delete_confirmation_names_the_folder_it_deletes(open_page, run_dir):
    at = open_page(RUNS)
    _button(at, "Delete run").click().run()
    warning = "\n".join(w.value for w in at.warning)
    assert str(run_dir) in warning.replace("\\", "")
    _button(at, "Yes, delete it").click().run()
    assert not run_dir.exists()
    assert any(str(run_dir) in s.value.replace("\\", "") for s in at.success)


def test_evaluate_shows_no_image_from_outside_the_allowed_folders(open_page, run_dir, tmp_path):
    """A run from elsewhere whose saved predictions name a file outside the folders the app may
    open (a photo, a key, /dev/zero): the gallery says so and shows nothing of it."""
    import csv

    from modelkit.runs.folder import RunFolder

    secret = tmp_path / "secret.png"
    Image.new("RGB", (40, 40), (1, 2, 3)).save(secret)
    table = RunFolder(run_dir).predictions("val")
    rows = list(csv.DictReader(table.open(newline="")))
    for row in rows:
        row["path"] = str(secret)
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    at = open_page("app_pages/evaluate.py")
    assert not at.exception
    shown = " ".join(c.value for c in at.caption)
    assert "secret.png (lies outside the folders this app may open)" in shown


def test_train_refuses_a_runs_folder_outside_the_allowed_roots(open_page, app_dirs, tmp_path):
    """The Runs folder box is where a run writes: a folder outside the ones the app may open
    (a shell's start-up folder, another user's files) is refused before anything is written."""
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=3)
    outside = tmp_path / "elsewhere"
    at = open_page(TRAIN)
    _dataset_box(at).set_value(str(dataset)).run()
    next(w for w in at.text_input if w.label == "Runs folder").set_value(str(outside))
    next(w for w in at.selectbox if w.label == "Starting weights").set_value(
        "Random (from scratch)"
    )
    _button(at, "Launch training").click().run()
    shown = "\n".join(errors(at))
    assert "runs_dir" in shown and "outside the folders this app may open" in shown
    assert job_registry().current is None and not outside.exists()


def test_evaluate_survives_a_damaged_calibration_report_and_calibrates_anew(open_page, run_dir):
    """A run folder from elsewhere whose calibration.json has the wrong types (issue #29): the
    page drew it and crashed; now it is no report, and Calibrate writes a good one."""
    import json

    from modelkit.evaluation.calibration_report import read_report
    from modelkit.runs.folder import RunFolder

    path = RunFolder(run_dir).calibration
    report = json.loads(path.read_text())
    path.unlink()  # a hard link to the session's run: replace it, never write through it
    path.write_text(json.dumps({**report, "temperature": "hot"}))
    assert "damaged calibration file" in read_report(run_dir).problem
    at = open_page("app_pages/evaluate.py")
    errors(at)
    assert any("not calibrated" in i.value for i in at.info)
    assert any("damaged calibration file" in w.value for w in at.warning)  # says why
    _button(at, "Calibrate").click().run()
    errors(at)
    assert read_report(run_dir).problem is None and read_report(run_dir).report is not None
    assert "Temperature" in [m.label for m in at.metric]
