"""Where the app keeps things: folders from the environment, the job registry, session keys.

Folders come from environment variables so tests and servers can point the app elsewhere:
``MODELKIT_DATA_DIR`` (datasets the app creates: samples, uploads, CIFAR), ``MODELKIT_RUNS_DIR``
and ``MODELKIT_ALLOWED_ROOTS`` (``os.pathsep``-separated folders the browser may show).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from modelkit.data.browse import BrowseError, open_folder
from modelkit.jobs import JobRegistry
from modelkit.paths import confine_from_now, roots_from_env, within
from modelkit.serving.predictor import Predictor

APP_ROOT = Path(__file__).resolve().parent.parent

# st.session_state keys shared between pages
DATASET_KEY = "dataset_path"  # str: the dataset folder chosen on the Dataset page
DATASET_QUERY = "dataset"  # the address's ?dataset=: a reload starts a new session, not a new pick
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
    """Make ``path`` the chosen data set, in the session and in the address, so a reload or a
    shared link opens the same one."""
    st.session_state[DATASET_KEY] = str(path)
    st.query_params[DATASET_QUERY] = str(path)


def forget_dataset() -> None:
    """No data set chosen any more (its folder was deleted): the address forgets it too."""
    st.session_state.pop(DATASET_KEY, None)
    st.query_params.pop(DATASET_QUERY, None)


def remember_dataset() -> str | None:
    """Keep the session's data set and the address's ``?dataset=`` in step.

    A session without one (a reload is a new session) takes the address's, after the same check
    a typed path gets: it must be an existing folder inside the allowed roots. A refused one is
    dropped from the address, and the reason returned for the page to show."""
    chosen = st.session_state.get(DATASET_KEY)
    if chosen:
        if st.query_params.get(DATASET_QUERY) != chosen:
            st.query_params[DATASET_QUERY] = chosen
        return None
    asked = st.query_params.get(DATASET_QUERY)
    if not asked:
        return None
    try:
        real = open_folder(asked, settings().allowed_roots)
    except BrowseError as exc:
        st.query_params.pop(DATASET_QUERY, None)
        return f"The dataset in the address cannot be opened: {exc}"
    choose_dataset(real)
    return None
