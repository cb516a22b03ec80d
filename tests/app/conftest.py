"""Fixtures for the AppTest suite.

One real tiny run is trained per session (a generated dataset of coloured squares, resnet18 at
32px, 2 epochs: a few seconds on a CPU). Each test gets its own data, runs and allowed-roots
folders through the environment, so no test sees another's runs or the repository's ./runs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import png_bytes
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app.py"
COLOURS = {
    "blue": (40, 60, 220),
    "green": (40, 190, 60),
    "purple": (150, 50, 170),
    "red": (220, 40, 40),
    "yellow": (230, 220, 40),
}
IMAGES_PER_CLASS = 8


def make_colour_dataset(root: Path, per_class: int = IMAGES_PER_CLASS, size: int = 40) -> Path:
    """Folders of noisy coloured squares with a grey blob: learnable, and tiny."""
    rng = random.Random(0)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            c = tuple(max(0, min(255, v + rng.randint(-30, 30))) for v in colour)
            img = Image.new("RGB", (size, size), c)
            x, y = rng.randint(0, size // 2), rng.randint(0, size // 2)
            grey = rng.randint(0, 255)
            ImageDraw.Draw(img).ellipse((x, y, x + size // 3, y + size // 3), fill=(grey,) * 3)
            img.save(folder / f"{name}_{i:02d}.png")
    return root


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def frame(at: AppTest, column: str):
    """The first st.dataframe holding ``column`` (plain dataframes carry no key in AppTest)."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no dataframe with a {column!r} column")


def _link_or_copy(src: str, dst: str) -> None:
    """Checkpoints are only ever replaced (written to a temp file, then renamed), so a hard link
    is a safe, instant copy of them; everything else is copied, since logs are appended to."""
    if src.endswith(".pt"):
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def copy_run(run_dir: Path, runs_dir: Path, name: str | None = None) -> Path:
    dest = runs_dir / (name or run_dir.name)
    shutil.copytree(run_dir, dest, copy_function=_link_or_copy)
    return dest


def mark_interrupted(run_dir: Path) -> None:
    """Make a run look like its training process died: state running, a pid that is gone."""
    path = run_dir / "status.json"
    status = json.loads(path.read_text())
    status.update(state="running", pid=999999, proc_start=None, host=socket.gethostname())
    status.pop("ended_at", None)
    path.write_text(json.dumps(status))


@pytest.fixture(scope="session")
def app_run_root(tmp_path_factory) -> Path:
    """Where the shared run and its images live: one of the app's allowed roots in every test,
    as a dataset a person trained on lies inside the folders the app may open."""
    return tmp_path_factory.mktemp("app_run")


@pytest.fixture(scope="session")
def app_run(app_run_root) -> Path:
    """A real finished run (checkpoints, metrics, saved evaluation), trained once per session.

    Five classes, so top-5 accuracy is recorded too. Read-only: tests use ``run_dir``, a copy."""
    from modelkit.config import TrainConfig
    from modelkit.training.loop import Trainer

    root = app_run_root
    data = make_colour_dataset(root / "data" / "colours")
    config = TrainConfig(
        data_dir=str(data),
        weights="none",
        image_size=32,
        batch_size=8,
        epochs=2,
        runs_dir=str(root / "runs"),
        device="cpu",
    )
    result = Trainer(config).fit()
    assert result.state == "finished"
    return result.run_dir


@pytest.fixture(autouse=True)
def app_dirs(tmp_path_factory, monkeypatch, app_run_root) -> dict[str, Path]:
    """Point the app at fresh per-test folders (data, runs; allowed root: their parent).

    They live in their own temporary folder, not in ``tmp_path``, so a test that lists or fills
    its tmp_path (or sets these variables itself) sees nothing of them."""
    root = tmp_path_factory.mktemp("app_env")
    dirs = {"root": root, "data": root / "data", "runs": root / "runs"}
    dirs["data"].mkdir()
    dirs["runs"].mkdir()
    monkeypatch.setenv("MODELKIT_DATA_DIR", str(dirs["data"]))
    monkeypatch.setenv("MODELKIT_RUNS_DIR", str(dirs["runs"]))
    monkeypatch.setenv("MODELKIT_ALLOWED_ROOTS", os.pathsep.join([str(root), str(app_run_root)]))
    return dirs


@pytest.fixture
def run_dir(app_run, app_dirs) -> Path:
    """This test's own copy of the trained run, in its runs folder."""
    return copy_run(app_run, app_dirs["runs"])


@pytest.fixture
def interrupted_run(run_dir) -> Path:
    """The test's run copy, looking as if its training process had died mid-run."""
    mark_interrupted(run_dir)
    return run_dir


@pytest.fixture
def another_copy(app_run, app_dirs) -> Callable[[str], Path]:
    """``another_copy(suffix)``: one more copy of the trained run in this test's runs folder."""
    return lambda suffix: copy_run(app_run, app_dirs["runs"], f"{app_run.name}-{suffix}")


@pytest.fixture
def png() -> Callable[..., bytes]:
    """``png(colour, size)``: the bytes of a small solid-colour PNG."""
    return png_bytes


@pytest.fixture(autouse=True)
def _no_job_left_running():
    """The job registry is a process-wide singleton: never let a test leave a job behind, nor
    a finished one that the next test's pages would show (and take their defaults from)."""
    yield
    from studio.state import job_registry

    job = job_registry().active()
    if job is not None:
        job.stop()
        job.join(60)
    job_registry.clear()
    tune_state = sys.modules.get("app_pages._tune_state")  # loaded once a test opened Tune
    if tune_state is not None:  # its search registry is one per process too
        search = tune_state.tune_registry().current
        if search is not None:
            search.stop()
            search.join(60)
        tune_state.tune_registry.clear()


@pytest.fixture
def app(tmp_path, monkeypatch) -> AppTest:
    """The app on its first page, its folders and allowed root inside this test's tmp_path
    (where the test writes its data sets)."""
    monkeypatch.setenv("MODELKIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MODELKIT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MODELKIT_ALLOWED_ROOTS", str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    return at


class FragmentTimer:
    """What the browser does between page runs, for AppTest (which only runs whole pages):
    records which fragments each run asked to poll (``polled``: an idle page should ask none),
    and ``tick`` reruns those fragments only, as the browser's timer does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import streamlit.testing.v1.local_script_runner as lsr

        self.monkeypatch, self._lsr = monkeypatch, lsr
        self.polled: list[str] = []  # fragment ids the last run asked the browser to poll
        parse = lsr.parse_tree_from_messages

        def recording(msgs):
            self.polled = [m.auto_rerun.fragment_id for m in msgs if m.HasField("auto_rerun")]
            return parse(msgs)

        monkeypatch.setattr(lsr, "parse_tree_from_messages", recording)

    def tick(self, at: AppTest) -> AppTest:
        """The fragments' timer firing once: their rerun, not the page's."""
        import functools

        assert self.polled, "nothing on the page polls"
        queued = functools.partial(
            self._lsr.RerunData, fragment_id_queue=list(self.polled), is_auto_rerun=True
        )
        with self.monkeypatch.context() as m:
            m.setattr(self._lsr, "RerunData", queued)
            return at.run()


@pytest.fixture
def fragment_timer(monkeypatch) -> FragmentTimer:
    return FragmentTimer(monkeypatch)


def _draw_live_view() -> None:
    from app_pages._train_live import live_view

    live_view()


@pytest.fixture
def show_live_view(monkeypatch) -> Callable:
    """``show_live_view(view)``: the Train page's live view alone, drawn for a job whose
    snapshot is ``view`` (a ``modelkit.jobs.LiveView``); nothing trains."""
    from helpers import FakeJob

    import app_pages._train_live as live

    # a finished run links to the Evaluate page, which a lone function has no navigation for
    monkeypatch.setattr(live.st, "page_link", lambda *args, **kwargs: None)

    def _show(view) -> AppTest:
        registry = type("Registry", (), {"current": FakeJob(view)})()
        monkeypatch.setattr(live, "job_registry", lambda: registry)
        at = AppTest.from_function(_draw_live_view, default_timeout=30)
        at.run()
        assert not at.exception, at.exception
        return at

    return _show


@pytest.fixture
def open_page() -> Callable[[str], AppTest]:
    """Run the real app (st.navigation and sidebar included) and switch to one page."""

    def _open(page: str, timeout: float = 60) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=timeout)
        at.run()
        at.switch_page(page)
        at.run()
        return at

    return _open
