"""The app's one background hyper-parameter search (a modelkit.tune.search.TuneJob), per server."""

from __future__ import annotations

import threading

import streamlit as st

from modelkit.tune.search import TuneJob


class TuneRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: TuneJob | None = None

    def start(self, job: TuneJob) -> TuneJob:
        with self._lock:
            if self.current is not None and self.current.active:
                raise RuntimeError(
                    f"search {self.current.study} is still running; stop it or wait for it"
                )
            self.current = job
            return job.start()


@st.cache_resource
def tune_registry() -> TuneRegistry:
    return TuneRegistry()
