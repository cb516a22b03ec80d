"""Jobs: background training for any front end (a thread, or a torchrun subprocess), the
registry that allows one at a time, and the live view pages draw. No streamlit here."""

from modelkit.jobs.live_view import LiveView
from modelkit.jobs.registry import JobBusyError, JobRegistry
from modelkit.jobs.thread_job import TrainingJob

__all__ = ["JobBusyError", "JobRegistry", "LiveView", "TrainingJob"]
