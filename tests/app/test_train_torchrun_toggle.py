"""Train page with several GPUs: a toggle hands the launch to torchrun (JobRegistry's
launch_subprocess); with one GPU or none the page is unchanged."""

from __future__ import annotations

import pytest
from conftest import make_colour_dataset

pytestmark = pytest.mark.slow

TOGGLE = "train_torchrun"


def test_no_toggle_without_several_gpus(open_page, monkeypatch):
    monkeypatch.setattr("modelkit.training.distributed.gpu_count", lambda: 1)
    at = open_page("app_pages/train.py")
    assert not at.exception
    assert not [t for t in at.toggle if t.key == TOGGLE]


def test_with_several_gpus_the_toggle_launches_torchrun(open_page, app_dirs, monkeypatch):
    from modelkit.jobs import JobRegistry

    launched = []

    def fake_launch(self, config, nproc):
        launched.append((config, nproc))  # recorded only: no GPUs here to run torchrun on

    monkeypatch.setattr("modelkit.training.distributed.gpu_count", lambda: 4)
    monkeypatch.setattr(JobRegistry, "launch_subprocess", fake_launch)
    dataset = make_colour_dataset(app_dirs["data"] / "colours", per_class=6)
    at = open_page("app_pages/train.py")
    next(w for w in at.text_input if w.label == "Dataset folder").set_value(str(dataset)).run()
    toggle = at.toggle(key=TOGGLE)
    assert "4 GPUs" in toggle.label
    toggle.set_value(True)
    next(b for b in at.button if "Launch training" in b.label).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(launched) == 1 and launched[0][1] == 4
    assert launched[0][0].data_dir == str(dataset)
