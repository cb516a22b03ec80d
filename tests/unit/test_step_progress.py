"""The long steps of a run (decoding, caching features or stage maps, validating, evaluating,
calibrating) each say their name and how far they are, so a person watching the app or the
command line sees what the run is doing and how long it will take, not a frozen last batch."""

from __future__ import annotations

import io

import pytest

from modelkit.events import BatchEnd, EpochEnd, RunStarted, StepProgress
from modelkit.jobs import LiveView, TrainingJob
from modelkit.jobs.torchrun_job import show_recorded_step
from modelkit.progress import eta_seconds
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.recorder import RunRecorder
from modelkit.training.loop import Trainer
from modelkit.training.progress import ProgressPrinter


def test_eta_is_the_time_so_far_per_item_times_the_items_left():
    assert eta_seconds(elapsed=10.0, done=2, total=10) == pytest.approx(40.0)
    assert eta_seconds(elapsed=10.0, done=10, total=10) == 0.0
    assert eta_seconds(elapsed=10.0, done=0, total=10) is None  # no rate yet
    assert eta_seconds(elapsed=10.0, done=3, total=0) is None  # nothing to count


def steps_of(events: list) -> list[list[StepProgress]]:
    """The step events grouped per step, each group from its start to its end."""
    groups: list[list[StepProgress]] = []
    for e in events:
        if not isinstance(e, StepProgress):
            continue
        if e.status == "start":
            groups.append([e])
        else:
            assert groups and groups[-1][-1].status != "end", f"{e.name}: no start"
            groups[-1].append(e)
    return groups


def check_each_step_counts_up_to_its_total(groups: list[list[StepProgress]]) -> list[str]:
    """Every step starts at 0, counts up without going back, and ends at its total; returns
    the steps' names, which must all differ (a second pass must not look like the first)."""
    names = []
    for group in groups:
        start, *progress, end = group
        assert start.status == "start" and start.done == 0 and end.status == "end"
        assert progress, f"{start.name}: no progress between its start and end"
        done = [e.done for e in progress]
        assert done == sorted(set(done)), f"{start.name}: {done}"
        assert end.done == end.total == start.total > 0
        names.append(end.name)
    assert len(names) == len(set(names)), names
    return names


def test_a_cached_features_run_names_each_long_step_and_each_pass(make_config):
    events: list = []
    cfg = make_config(freeze_backbone=True, epochs=2, feature_passes=2, test_ratio=0.2)
    assert Trainer(cfg, [events.append]).fit().state == "finished"
    names = check_each_step_counts_up_to_its_total(steps_of(events))
    assert names == [
        "Decoding images",
        "Computing features for the head (pass 1 of 2)",
        "Validating epoch 1",
        "Computing features for the head (pass 2 of 2)",
        "Validating epoch 2",
        "Evaluating on the validation split",
        "Evaluating on the test split",
        "Calibrating",
    ]


def test_each_stage_maps_pass_is_a_step_of_its_own(make_config):
    events: list = []
    cfg = make_config(
        frozen_stages=2, cache_frozen_stages=True, epochs=2, feature_passes=2, hflip=True
    )
    assert Trainer(cfg, [events.append]).fit().state == "finished"
    names = check_each_step_counts_up_to_its_total(steps_of(events))
    maps = [n for n in names if "stage maps" in n]
    assert maps == ["Computing stage maps (pass 1 of 2)", "Computing stage maps (pass 2 of 2)"]


def test_validation_is_a_step_between_the_last_batch_and_the_epoch_end(make_config):
    events: list = []
    assert Trainer(make_config(epochs=1), [events.append]).fit().state == "finished"
    kinds = [
        e.name if isinstance(e, StepProgress) and e.step == "validate" else type(e).__name__
        for e in events
        if isinstance(e, (BatchEnd, EpochEnd, StepProgress))
    ]
    last_batch, epoch_end = len(kinds) - 1 - kinds[::-1].index("BatchEnd"), kinds.index("EpochEnd")
    assert "Validating epoch 1" in kinds[last_batch:epoch_end]


def step(status: str, done: int, total: int = 20, elapsed: float = 0.0, **kw) -> StepProgress:
    fields = dict(step="features", name="Computing features for the head (pass 2 of 3)")
    return StepProgress(**{**fields, **kw}, done=done, total=total, status=status, elapsed=elapsed)


def test_the_live_view_names_the_step_under_way_with_its_eta(make_config):
    job = TrainingJob(make_config(epochs=3))  # fed by hand: nothing trains
    job._on_event(RunStarted("runs/x", {}, [], "cpu", "fp32", 24, 6, 0, 3))
    job._on_event(BatchEnd(0, 2, 3, 1.0, 0.01, 50.0, 3))
    started = job.snapshot().started
    job._on_event(step("start", 0))
    job._on_event(step("progress", 5, elapsed=10.0))
    view = job.snapshot()
    assert view.step == "Computing features for the head (pass 2 of 3)"
    assert view.state == "running" and view.started == started  # the run's clock keeps going
    assert (view.step_done, view.step_total, view.step_fraction) == (5, 20, 0.25)
    assert view.step_eta_seconds >= 30.0  # 10 s for 5 images: 30 s for the other 15
    job._on_event(step("end", 20, elapsed=40.0))
    assert job.snapshot().step == "" and job.snapshot().step_eta_seconds is None


def test_the_command_line_redraws_a_step_on_a_terminal():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=True)
    for event in (step("start", 0), step("progress", 10, elapsed=6.0), step("end", 20, 20, 12)):
        printer(event)
    text = out.getvalue()
    assert "\rComputing features for the head (pass 2 of 3): 50% 10/20 images · ETA 6 s" in text
    # the end stays on the screen, on a line of its own
    assert text.endswith("(pass 2 of 3): 20/20 images in 12 s\x1b[K\n")


def test_the_command_line_logs_a_step_in_a_few_lines():
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    printer(step("start", 0, total=1000))
    for done in range(1, 1001):  # a long step: its first line at once, not after a tenth
        printer(step("progress", done, total=1000, elapsed=30.0 + done))
    printer(step("end", 1000, total=1000, elapsed=1100.0))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 2 <= len(lines) <= 12  # one a tenth at most, and the end
    assert lines[0].startswith("Computing features for the head (pass 2 of 3): 0% 1/1000 images")
    assert "ETA" in lines[0]
    assert lines[-1].endswith("(pass 2 of 3): 1000/1000 images in 18 min 20 s")


def test_the_run_folder_tells_another_process_the_step_and_logs_its_time(tmp_path):
    folder = RunFolder(tmp_path)
    recorder = RunRecorder(tmp_path)
    recorder(step("start", 0))
    recorder(step("progress", 5, elapsed=10.0))
    view = LiveView(state="running")  # what a torchrun job's watcher reads from the folder
    show_recorded_step(view, read_json(folder.status)["step"])
    assert view.step == "Computing features for the head (pass 2 of 3)"
    assert (view.step_done, view.step_total) == (5, 20) and view.step_eta_seconds >= 30.0
    recorder(step("end", 20, elapsed=40.0))
    show_recorded_step(view, read_json(folder.status)["step"])
    assert view.step == ""
    log = folder.log.read_text()
    assert "Computing features for the head (pass 2 of 3): 20/20 images in 40.0 s" in log
