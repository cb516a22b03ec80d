"""The app when things go wrong: out of memory, an unwritable runs folder, unsafe checkpoints,
oversize uploads, paths out of the allowed roots, two sessions on one job. The page stays up and
says what happened."""

from __future__ import annotations

import json
import os
import tomllib

import torch
import torchvision
from conftest import REPO, make_colour_dataset

from modelkit.runs.store import wait_until
from studio.state import job_registry

TRAIN, CLASSIFY, EVALUATE, RUNS, DATASET = (
    "app_pages/train.py",
    "app_pages/classify.py",
    "app_pages/evaluate.py",
    "app_pages/runs.py",
    "app_pages/dataset.py",
)


def errors(at) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error]


def fill_and_launch(at, dataset, epochs: int = 1):
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset)).run()
    for label, value in (("Epochs", epochs), ("Image size (px)", 32), ("Batch size", 8)):
        next(w for w in at.number_input if w.label == label).set_value(value)
    next(w for w in at.selectbox if w.label == "Starting weights").set_value(
        "Random (from scratch)"
    )
    # the form's default architecture depends on the machine (the bundled one offline)
    next(w for w in at.selectbox if w.label == "Architecture").set_value("resnet18")
    next(b for b in at.button if "Launch training" in b.label).click().run()
    return at


# -- the server ------------------------------------------------------------------------------------
def test_server_binds_localhost_and_limits_uploads():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    limit = config["server"]["maxUploadSize"]
    assert isinstance(limit, int) and 1 <= limit <= 4096  # MB


# -- training failures -----------------------------------------------------------------------------
def test_out_of_memory_is_shown_and_the_page_stays_up(open_page, app_dirs, monkeypatch):
    def forward(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")

    monkeypatch.setattr(torchvision.models.resnet.ResNet, "forward", forward)
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=4)
    at = fill_and_launch(open_page(TRAIN), dataset)
    job_registry().current.join(60)
    at.run()
    shown = "\n".join(errors(at))
    assert "out of memory" in shown and "smaller batch size or image size" in shown
    assert [m.value for m in at.metric if m.label == "State"] == ["failed"]
    assert any("Launch training" in b.label for b in at.button)  # the form is still there


def test_unwritable_runs_folder_is_shown(open_page, app_dirs, monkeypatch):
    blocker = app_dirs["root"] / "file.txt"
    blocker.write_text("a file where the runs folder should be")
    monkeypatch.setenv("MODELKIT_RUNS_DIR", str(blocker / "runs"))
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=4)
    at = fill_and_launch(open_page(TRAIN), dataset)
    job_registry().current.join(60)
    at.run()
    shown = "\n".join(errors(at))
    assert "cannot create the runs folder" in shown and "file.txt" in shown


def test_two_sessions_see_one_job_and_the_second_cannot_launch(open_page, app_dirs):
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=4)
    first = fill_and_launch(open_page(TRAIN), dataset, epochs=200)
    job = job_registry().active()
    assert job is not None
    try:
        # the job is named after its run folder once the trainer has made it
        assert wait_until(lambda: bool(job.snapshot().run_dir), timeout=60)
        second = open_page(TRAIN)  # another browser tab: its own session, the same registry
        errors(second)
        assert any(job.name in s.value for s in second.subheader)
        fill_and_launch(second, dataset)
        assert any("still running" in e and job.name in e for e in errors(second))
        assert job_registry().current is job
        stop = [b for b in second.button if "Stop training" in b.label]
        if stop:  # stopping from the other tab stops the one job
            stop[0].click().run()
        else:
            job.stop()
        job.join(60)
        first.run()
        assert [m.value for m in first.metric if m.label == "State"] == ["stopped"]
    finally:
        job.stop()
        job.join(60)


# -- checkpoints that would run code or are damaged ------------------------------------------------
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_classify_refuses_a_checkpoint_that_would_run_code(open_page, run_dir, tmp_path):
    marker = tmp_path / "pwned"
    best = run_dir / "checkpoints" / "best.pt"
    best.unlink()  # a hard link to the session's run: replace it, never write through it
    torch.save({"format": "modelkit", "model": _Evil(marker)}, best)
    at = open_page(CLASSIFY)
    shown = "\n".join(errors(at))
    assert f"Cannot load the model of {run_dir.name}" in shown and "refused to load" in shown
    assert not marker.exists()


def test_evaluate_names_a_damaged_checkpoint(open_page, run_dir):
    best = run_dir / "checkpoints" / "best.pt"
    damaged = best.read_bytes()[:5000]
    best.unlink()  # a hard link to the session's run: replace it, never write through it
    best.write_bytes(damaged)
    (run_dir / "evaluation" / "val.json").unlink()
    at = open_page(EVALUATE)
    errors(at)
    at.button(key="evaluate_now").click().run()
    shown = "\n".join(errors(at))
    assert f"Could not evaluate {run_dir.name}" in shown and "damaged" in shown
    assert "best.pt" in shown


def test_a_tampered_config_makes_the_run_unreadable_on_the_runs_page(open_page, interrupted_run):
    """Wrong types in a run's files: the run is listed as unreadable with the reason (the field
    named), cannot be resumed, and can still be deleted."""
    config = json.loads((interrupted_run / "config.json").read_text())
    config["epochs"] = "many"
    (interrupted_run / "config.json").write_text(json.dumps(config))
    at = open_page(RUNS)
    shown = "\n".join(errors(at))
    assert "This run cannot be read" in shown and "epochs" in shown
    assert at.button(key="runs_resume").disabled
    assert not at.button(key="runs_delete").disabled
    assert job_registry().active() is None


# -- uploads ---------------------------------------------------------------------------------------
def test_classify_names_an_upload_over_the_size_limit(open_page, run_dir, png):
    at = open_page(CLASSIFY)
    big = png((10, 10, 10)) + b"\0" * (50 * 1024 * 1024)
    at.file_uploader(key="classify_files").set_value(
        [("huge.png", big, "image/png"), ("red.png", png((220, 40, 40)), "image/png")]
    )
    at.run()
    shown = errors(at)
    assert len(shown) == 1 and "huge.png" in shown[0] and "50 MB limit" in shown[0]
    table = next(df.value for df in at.dataframe if "top label" in df.value.columns)
    assert list(table["file"]) == ["red.png"]


# -- folder browsing stays inside the allowed roots ------------------------------------------------
def test_dataset_path_box_refuses_dotdot_and_symlinks_out_of_the_root(
    open_page, app_dirs, tmp_path_factory
):
    outside = make_colour_dataset(tmp_path_factory.mktemp("outside") / "secret", per_class=2)
    link = app_dirs["data"] / "linked"
    os.symlink(outside, link)
    at = open_page(DATASET)
    for path in (link, app_dirs["data"] / ".." / ".." / outside.parent.name, "/etc/../etc"):
        at.text_input(key="ds_path_input").set_value(str(path))
        at.button(key="ds_open_path").click().run()
        shown = "\n".join(errors(at))
        assert "outside the folders this app may open" in shown, (path, shown)
    assert "dataset_path" not in at.session_state
    labels = [b.label for b in at.button if (b.key or "").startswith("ds_browse_")]
    assert not any("linked" in label for label in labels)
