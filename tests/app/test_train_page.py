"""AppTest for the Train page: the form, launching a real tiny job, the live view, refusal of a
second launch, and stopping."""

from __future__ import annotations

import json

from conftest import make_colour_dataset

from modelkit.runs.store import read_metrics


def _number(at, label):
    return next(w for w in at.number_input if w.label == label)


def _fill_fast_settings(at, dataset, epochs=2):
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset)).run()
    # no recipe: auto would measure at launch and may change what it had shown (a tiny image's
    # 32 px, from scratch), which these values would then be taken for
    next(w for w in at.selectbox if w.label == "Recipe").set_value("none").run()
    _number(at, "Epochs").set_value(epochs)
    _number(at, "Image size (px)").set_value(32)
    _number(at, "Batch size").set_value(8)
    next(w for w in at.selectbox if w.label == "Starting weights").set_value(
        "Random (from scratch)"
    )


def _launch(at):
    next(b for b in at.button if "Launch training" in b.label).click().run()


def test_train_page_renders_the_grouped_form(open_page):
    at = open_page("app_pages/train.py")
    assert not at.exception
    labels = {w.label for w in [*at.number_input, *at.selectbox, *at.slider, *at.checkbox]}
    for expected in ("Architecture", "Epochs", "Learning rate", "Schedule", "Optimizer", "Head"):
        assert expected in labels
    assert any("Launch training" in b.label for b in at.button)
    assert any("Pick a dataset first" in i.value for i in at.info)


def test_launch_trains_and_shows_results(open_page, app_dirs):
    from studio.state import job_registry

    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    at = open_page("app_pages/train.py")
    _fill_fast_settings(at, dataset)
    _launch(at)
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    job = job_registry().current
    assert job is not None
    job.join(120)
    at.run()
    assert any("Training finished" in s.value for s in at.success)
    states = [m.value for m in at.metric if m.label == "State"]
    assert states == ["finished"]
    run_dir = job.snapshot().run_dir
    assert len(read_metrics(run_dir)) == 2
    config = json.loads((app_dirs["runs"] / run_dir.split("/")[-1] / "config.json").read_text())
    assert config["image_size"] == 32 and config["weights"] == "none"
    # A reloaded tab is a new session: it finds the job, and the form starts from its dataset.
    fresh = open_page("app_pages/train.py")
    assert [m.value for m in fresh.metric if m.label == "State"] == ["finished"]
    folder = next(w for w in fresh.text_input if w.label == "Dataset folder")
    assert folder.value == str(dataset)
    assert at.session_state["selected_run"] == run_dir


def test_second_launch_is_refused_naming_the_running_job(open_page, app_dirs):
    from studio.state import job_registry

    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    at = open_page("app_pages/train.py")
    _fill_fast_settings(at, dataset, epochs=50)
    _launch(at)
    job = job_registry().active()
    assert job is not None
    # The live view is on top and the form folds away while the job runs.
    (folded,) = [e for e in at.expander if e.label == "Settings for a new run"]
    assert folded.proto.expanded is False
    assert "Launch training" in [b.label for b in folded.button]
    _launch(at)
    assert any("still running" in e.value and job.name in e.value for e in at.error)
    # Stop from the page: the Stop button appears once the job is running.
    at.run()
    stop = [b for b in at.button if "Stop training" in b.label]
    if stop:
        stop[0].click().run()
    else:
        job.stop()
    job.join(60)
    assert job.snapshot().state == "stopped"


def test_bad_dataset_path_shows_the_error_in_the_live_view(open_page, app_dirs):
    from studio.state import job_registry

    at = open_page("app_pages/train.py")
    _fill_fast_settings(at, app_dirs["data"] / "missing")
    _launch(at)
    job_registry().current.join(30)
    at.run()
    assert any("not found" in e.value for e in at.error)


def _architecture(at):
    return next(w for w in at.selectbox if w.label == "Architecture").value


def test_offline_the_form_starts_from_the_bundled_pretrained_backbone(open_page, monkeypatch):
    """A fresh machine with no internet and an empty torch cache: the form's default is a
    pretrained model that works (the bundled EfficientNet-Lite0), and the page says why."""
    from modelkit.models import weights

    monkeypatch.setattr(weights, "imagenet_available", lambda arch, probe=True: False)
    at = open_page("app_pages/train.py")
    assert not at.exception
    assert _architecture(at) == "efficientnet_lite0"
    starting = next(w for w in at.selectbox if w.label == "Starting weights").value
    assert "ImageNet" in starting
    assert any("bundled with modelkit" in c.value for c in at.caption)


def test_online_the_form_starts_from_resnet18(open_page, monkeypatch):
    from modelkit.models import weights

    monkeypatch.setattr(weights, "imagenet_available", lambda arch, probe=True: True)
    at = open_page("app_pages/train.py")
    assert not at.exception
    assert _architecture(at) == "resnet18"
    assert not any("bundled with modelkit" in c.value for c in at.caption)
