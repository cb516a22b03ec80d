"""What a run folder's JSON files must look like before a page or the CLI uses them.

A run folder can be edited by hand, copied from elsewhere or half-written by a crash, so every
file in it is untrusted. Each check returns the first problem as a sentence naming the file and
the field (or None when the file is fine); the store then lists the run as *unreadable* with that
reason, and it can still be deleted. Checks stop at what pages and the CLI read.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from modelkit.config import TrainConfig
from modelkit.names import classes_problem as names_problem


def _is_number(value: Any) -> bool:
    """int or float, not bool; NaN and inf pass (a diverged run records them honestly)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _defaults() -> dict[str, Any]:
    out = {}
    for f in fields(TrainConfig):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


_DEFAULTS = _defaults()


def _same_kind(value: Any, default: Any) -> bool:
    """Whether a config value has the type of the field's default (an int passes for a float)."""
    if default is None:  # optional fields (None or a number or text): anything but a container
        return not isinstance(value, (dict, list))
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return _is_number(value)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    return True


def config_problem(config: Any) -> str | None:
    if not isinstance(config, dict):
        return f"config.json holds {_kind(config)}, not an object of settings"
    for key, value in config.items():
        if key in _DEFAULTS and not _same_kind(value, _DEFAULTS[key]):
            return f"config.json: {key} is {_kind(value)} {value!r:.40}, not a valid setting"
    return None


def classes_problem(classes: Any) -> str | None:
    return names_problem(classes, "classes.json")


_STATUS_TEXT = ("state", "started_at", "updated_at", "ended_at", "resumed_at", "error", "host")
_STATUS_NUMBER = ("active_s", "epoch", "pid")


def status_problem(status: Any) -> str | None:
    if status is None:
        return None  # no status.json yet: a run that never started
    if not isinstance(status, dict):
        return f"status.json holds {_kind(status)}, not an object"
    for key in _STATUS_TEXT:
        value = status.get(key)
        if value is not None and not isinstance(value, str):
            return f"status.json: {key} is {_kind(value)}, not text"
    for key in _STATUS_NUMBER:
        value = status.get(key)
        if value is not None and not _is_number(value):
            return f"status.json: {key} is {_kind(value)}, not a number"
    best = status.get("best")
    if best is not None:
        problem = metrics_row_problem(best)
        if problem:
            return f"status.json: best: {problem}"
    return None


def metrics_row_problem(row: Any) -> str | None:
    """A row of metrics: an epoch number and numbers (or null) for every metric."""
    if not isinstance(row, dict):
        return f"a row is {_kind(row)}, not an object"
    for key, value in row.items():
        if value is not None and not _is_number(value):
            return f"{key} is {_kind(value)} {value!r:.40}, not a number"
    return None
