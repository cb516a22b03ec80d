"""Where the app keeps things: folders from the environment, the job registry, session keys.

Folders come from environment variables so tests and servers can point the app elsewhere:
``MODELKIT_DATA_DIR`` (datasets the app creates: samples, uploads, CIFAR), ``MODELKIT_RUNS_DIR``
and ``MODELKIT_ALLOWED_ROOTS`` (``os.pathsep``-separated folders the browser may show).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from modelkit.data.browse import BrowseError, open_dataset
from modelkit.jobs import JobRegistry
from modelkit.paths import confine_from_now, roots_from_env, within
from modelkit.serving.predictor import Prediction, Predictor

APP_ROOT = Path(__file__).resolve().parent.parent

# st.session_state keys shared between pages
DATASET_KEY = "dataset_path"  # str: the dataset folder chosen on the Dataset page
DATASET_QUERY = "dataset"  # the address's ?dataset=: a reload forgets st.session_state
RUN_KEY = "selected_run"  # str: run folder chosen on Evaluate / Classify / Runs


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    runs_dir: Path
    allowed_roots: tuple[Path, ...]


def settings() -> Settings:
    """The app's folders, read from the environment. A page reading them also confines what its
    run opens from then on (images included) to the allowed roots: every page asks for them, and
    runs and datasets from elsewhere may name any file on the machine. Only a page's run: code
    outside Streamlit's script threads (a test, a job's thread) keeps its own confinement."""
    data_dir = Path(os.environ.get("MODELKIT_DATA_DIR") or APP_ROOT / "data").expanduser()
    runs_dir = Path(os.environ.get("MODELKIT_RUNS_DIR") or APP_ROOT / "runs").expanduser()
    data_dir = data_dir.resolve()
    roots = roots_from_env(default=[Path.home(), data_dir])
    runs_dir = runs_dir.resolve()
    for own in (data_dir, runs_dir):  # samples, uploads, CIFAR and runs land there: usable
        if not within(own, roots):
            roots = (*roots, own)
    if get_script_run_ctx(suppress_warning=True) is not None:
        confine_from_now(roots)
    return Settings(data_dir, runs_dir, roots)


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def cached_predictor(checkpoint: str, mtime_ns: int) -> Predictor:
    """One warm Predictor per checkpoint file, shared by the pages that predict (Classify, the
    Evaluate page's Grad-CAM); a rewritten file (new mtime) loads afresh."""
    return Predictor(checkpoint)


@st.cache_resource
def job_registry() -> JobRegistry:
    """One registry per server process: every session and browser tab sees the same job.

    It reads the app's allowed roots at each launch, so whatever page launches a job, its dataset
    and weights are checked against them once more before training starts."""
    return JobRegistry(roots=lambda: settings().allowed_roots)


def choose_dataset(path: str | os.PathLike) -> None:
    """Make ``path`` the chosen data set, in ``st.session_state`` and in the address, so a
    reload or a shared link opens the same one."""
    st.session_state[DATASET_KEY] = str(path)
    st.query_params[DATASET_QUERY] = str(path)


def forget_dataset() -> None:
    """No data set chosen any more (its folder was deleted): the address forgets it too."""
    st.session_state.pop(DATASET_KEY, None)
    st.query_params.pop(DATASET_QUERY, None)


def remember_dataset() -> str | None:
    """Keep ``st.session_state``'s data set and the address's ``?dataset=`` in step.

    A browser tab without one (a reload starts afresh) takes the address's, after the same check
    a typed path gets: it must be an existing folder, or a list of files (.json), inside the
    allowed roots. A refused one is dropped from the address, and the reason returned for the
    page to show."""
    chosen = st.session_state.get(DATASET_KEY)
    if chosen:
        if st.query_params.get(DATASET_QUERY) != chosen:
            st.query_params[DATASET_QUERY] = chosen
        return None
    asked = st.query_params.get(DATASET_QUERY)
    if not asked:
        return None
    try:
        real = open_dataset(asked, settings().allowed_roots)
    except BrowseError as exc:
        st.query_params.pop(DATASET_QUERY, None)
        return f"The dataset in the address cannot be opened: {exc}"
    choose_dataset(real)
    return None


@dataclass
class KeptImage:
    """One image given to Classify, its bytes and, once classified, its answer and thumbnail."""

    file_id: str
    name: str
    data: bytes
    prediction: Prediction | None = None
    thumb: bytes | None = None


@dataclass
class KeptImages:
    """Classify's images and answers, kept in ``st.session_state``: the upload box forgets its
    files when the person opens another page, these stay until cleared. The newest are kept
    within ``max_images`` and ``max_bytes``, so the memory each browser tab holds stays bounded."""

    max_images: int = 200
    max_bytes: int = 128 * 2**20
    items: list[KeptImage] = field(default_factory=list)
    model: tuple | None = None  # the model the predictions are of
    known: set[str] = field(default_factory=set)  # upload ids taken (kept, let go or cleared)
    dropped: int = 0  # images let go to stay within the bounds

    def add(self, files: Iterable) -> None:
        """Take each upload (``file_id``, ``name``, ``getvalue()``) not taken before; an upload
        still in the box after a Clear or after being let go is not taken again."""
        for f in files:
            if f.file_id in self.known:
                continue
            self.known.add(f.file_id)
            self.items.append(KeptImage(f.file_id, f.name, f.getvalue()))
        while len(self.items) > self.max_images or (
            len(self.items) > 1 and sum(len(k.data) for k in self.items) > self.max_bytes
        ):
            self.items.pop(0)
            self.dropped += 1

    def forget(self, file_ids: Iterable[str]) -> None:
        """Drop the images of uploads taken out of the box."""
        gone = set(file_ids)
        self.items = [k for k in self.items if k.file_id not in gone]
        self.known -= gone

    def clear(self) -> None:
        """No images kept; the uploads still in the box stay known, so they are not re-taken."""
        self.items = []
        self.dropped = 0

    def pending(self, model: tuple) -> list[KeptImage]:
        """The images without an answer from ``model``: all of them after a change of model."""
        if model != self.model:
            for k in self.items:
                k.prediction = None
            self.model = model
        return [k for k in self.items if k.prediction is None]
