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

from modelkit.jobs import JobRegistry
from modelkit.paths import confine_from_now, roots_from_env, within
from modelkit.serving.predictor import Predictor

APP_ROOT = Path(__file__).resolve().parent.parent

# st.session_state keys shared between pages
DATASET_KEY = "dataset_path"  # str: the dataset folder chosen on the Dataset page
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
