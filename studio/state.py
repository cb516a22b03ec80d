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

from modelkit.jobs import JobRegistry

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
    data_dir = Path(os.environ.get("MODELKIT_DATA_DIR") or APP_ROOT / "data").expanduser()
    runs_dir = Path(os.environ.get("MODELKIT_RUNS_DIR") or APP_ROOT / "runs").expanduser()
    roots_env = os.environ.get("MODELKIT_ALLOWED_ROOTS")
    if roots_env:
        roots = [Path(p).expanduser() for p in roots_env.split(os.pathsep) if p.strip()]
    else:
        roots = [Path.home(), data_dir]
    resolved = []
    for r in roots:
        r = r.resolve()
        if r not in resolved:
            resolved.append(r)
    return Settings(data_dir.resolve(), runs_dir.resolve(), tuple(resolved))


@st.cache_resource
def job_registry() -> JobRegistry:
    """One registry per server process: every session and browser tab sees the same job."""
    return JobRegistry()
