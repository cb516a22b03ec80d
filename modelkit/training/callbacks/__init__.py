"""The callbacks of a training run: the hooks (``base``) and the ones every run uses."""

from modelkit.training.callbacks.base import HOOKS, Callback, call_hooks
from modelkit.training.callbacks.checkpoint import Checkpoint
from modelkit.training.callbacks.early_stopping import EarlyStopping
from modelkit.training.callbacks.final_evaluation import FinalEvaluation
from modelkit.training.callbacks.phase_switch import PhaseSwitch
from modelkit.training.callbacks.reporter import FINISHED, EventReporter

__all__ = [
    "FINISHED",
    "HOOKS",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EventReporter",
    "FinalEvaluation",
    "PhaseSwitch",
    "call_hooks",
]
