"""What an ensemble run is made of, in words, wherever a person meets one.

An ensemble run (``modelkit.runs.ensemble``) was not trained: its config.json names the runs it
averages (``ensemble_of``) and keeps the first one's data and inference settings, with no
training settings and no epochs of its own. Whatever describes a trained run by its settings and
curves (the run list, the report, the Evaluate page, retrain and resume) would print question
marks or fail on a settings check for it, so each asks here and says what it averages instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelkit.config import TrainConfig
from modelkit.errors import ModelkitError
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.metrics_log import recorded_val_acc

ENSEMBLE_ARCH = "ensemble"  # models.ensemble.ENSEMBLE, spelt here: importing it loads torch


class NoTrainingSettings(ModelkitError, ValueError):
    """A run that was not trained (an ensemble) cannot be trained again or resumed as one."""


@dataclass(frozen=True)
class Member:
    run: str
    found: bool  # its folder is beside the ensemble's
    val_acc: float | None  # its best epoch's, as it recorded it (None: not found or none)


def ensemble_members(config: Mapping[str, Any]) -> list[str]:
    """The ids of the runs an ensemble run averages, in order; [] for a trained run."""
    members = config.get("ensemble_of")
    return [str(m) for m in members] if isinstance(members, list) else []


def is_ensemble(config: Mapping[str, Any]) -> bool:
    return config.get("arch") == ENSEMBLE_ARCH or bool(ensemble_members(config))


def _and(names: list[str]) -> str:
    if not names:
        return "runs it does not name"
    if len(names) == 1:
        return f"run {names[0]}"
    return "runs " + ", ".join(names[:-1]) + f" and {names[-1]}"


def ensemble_summary(config: Mapping[str, Any]) -> str:
    """The run list's line for an ensemble run: 'ensemble of run-a + run-b (48 px)'."""
    names = " + ".join(ensemble_members(config)) or "runs it does not name"
    size = config.get("image_size")
    px = f" ({size} px)" if isinstance(size, int) and not isinstance(size, bool) else ""
    return f"ensemble of {names}{px}"


def no_training_settings(config: Mapping[str, Any]) -> str:
    """Why an ensemble run cannot be trained again or resumed, naming what to train instead."""
    return (
        "an ensemble run has no training settings of its own: it averages "
        f"{_and(ensemble_members(config))}"
    )


def untrained_reason(run_dir: str | Path) -> str | None:
    """``no_training_settings`` for an ensemble run, None for a run that trained (or whose
    config.json cannot be read: the reader that needs it says so)."""
    config = read_json(RunFolder(run_dir).config, {})
    if isinstance(config, dict) and is_ensemble(config):
        return no_training_settings(config)
    return None


def training_config(run_dir: str | Path) -> TrainConfig:
    """The settings a run trained with, to train it again: for an ensemble run a
    NoTrainingSettings that names its runs, where TrainConfig would list keys it does not know."""
    if why := untrained_reason(run_dir):
        raise NoTrainingSettings(f"{why}; retrain those, then make the ensemble again")
    return TrainConfig.load(RunFolder(run_dir).config)


def members(run_dir: str | Path, config: Mapping[str, Any]) -> list[Member]:
    """Each run the ensemble at ``run_dir`` averages, looked for beside it (where ``modelkit
    ensemble`` puts it unless told otherwise), with its best val accuracy: its status.json, or
    its metrics when that records none."""
    out = []
    for name in ensemble_members(config):
        path = Path(run_dir).parent / name
        folder = RunFolder(path)
        if Path(name).name != name or not folder.is_run():  # a name, never a path to follow
            out.append(Member(name, False, None))
            continue
        out.append(Member(name, True, recorded_val_acc(path)))
    return out


def curves_note(run_dir: str | Path, config: Mapping[str, Any]) -> str:
    """What an ensemble run shows where a trained run shows its curves: it has no epochs, and
    whose curves to read instead, each with its best val accuracy."""
    named = []
    for m in members(run_dir, config):
        if m.val_acc is not None:
            named.append(f"{m.run} (best val accuracy {m.val_acc:.1%})")
        else:
            named.append(m.run if m.found else f"{m.run} (not in this runs folder)")
    return (
        "This ensemble run was not trained, so it has no epochs of its own: it averages the "
        f"predictions of {_and(named)}, each with curves of its own."
    )
