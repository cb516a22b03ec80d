"""modelkit: train image classifiers on your own photo folders, headless.

The public API, importable from the top (``from modelkit import TrainConfig, Trainer``). Names
load on first use, so ``import modelkit`` and ``modelkit --help`` stay quick and need no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ModelkitError": "modelkit.errors",
    "TrainConfig": "modelkit.config",
    "ConfigError": "modelkit.config",
    "recipe": "modelkit.recipes",
    "resolve": "modelkit.recipes",
    "scan_dataset": "modelkit.data.scan",
    "DatasetError": "modelkit.data.scan",
    "build_report": "modelkit.data.report",
    "Trainer": "modelkit.training.loop",
    "TrainingError": "modelkit.training.loop",
    "Callback": "modelkit.training.callbacks",
    "Predictor": "modelkit.serving.predictor",
    "export_run": "modelkit.serving.export",
    "evaluate_run": "modelkit.evaluation.evaluate",
    "RunStore": "modelkit.runs.store",
    "RunFolder": "modelkit.runs.folder",
    "predict_folder": "modelkit.serving.folder_predict",
    "load_run": "modelkit.runs.store",
    "JobRegistry": "modelkit.jobs",
}

__all__ = [
    "Callback",
    "ConfigError",
    "DatasetError",
    "JobRegistry",
    "ModelkitError",
    "Predictor",
    "RunFolder",
    "RunStore",
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "build_report",
    "evaluate_run",
    "export_run",
    "load_run",
    "predict_folder",
    "recipe",
    "resolve",
    "scan_dataset",
]

if TYPE_CHECKING:
    from modelkit.config import ConfigError, TrainConfig
    from modelkit.data.report import build_report
    from modelkit.data.scan import DatasetError, scan_dataset
    from modelkit.errors import ModelkitError
    from modelkit.evaluation.evaluate import evaluate_run
    from modelkit.jobs import JobRegistry
    from modelkit.recipes import recipe, resolve
    from modelkit.runs.folder import RunFolder
    from modelkit.runs.store import RunStore, load_run
    from modelkit.serving.export import export_run
    from modelkit.serving.folder_predict import predict_folder
    from modelkit.serving.predictor import Predictor
    from modelkit.training.callbacks import Callback
    from modelkit.training.loop import Trainer, TrainingError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
