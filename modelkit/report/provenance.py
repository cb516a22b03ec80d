"""Where each setting of a run came from, from what the run folder kept.

The run keeps its settings (config.json), what it planned (plan.json, when a time budget changed
the epochs) and, in its log, one line per choice ``auto`` made with the reason. A value auto did
not choose is either the schema's default or one the person (or a recipe) set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelkit.config import schema
from modelkit.report.runlog import SKIPPED, LogLine

_AUTO = re.compile(r"^auto: (\w+) = (.*?)(?: \((.*)\))?$")
AUTO, DEFAULT, SET = "auto", "default", "set (by you or a recipe)"


@dataclass(frozen=True)
class SettingRow:
    group: str
    name: str
    value: Any
    source: str  # AUTO, DEFAULT or SET
    reason: str = ""  # auto's reason, or the schema's help for the others


def auto_choices(log: list[LogLine]) -> dict[str, str]:
    """{setting: reason} for each setting auto chose, as its log lines say."""
    out = {}
    for line in log:
        m = _AUTO.match(line.text)
        if m:
            out[m.group(1)] = m.group(3) or ""
    return out


def setting_rows(config: dict[str, Any], log: list[LogLine]) -> list[SettingRow]:
    """Every setting of the run in the schema's order (grouped), with its source; settings the
    schema no longer knows are listed last as they were saved."""
    chose = auto_choices(log)
    rows, known = [], set()
    for s in sorted(schema(), key=lambda s: (_group_rank(s.group), not s.essential)):
        known.add(s.name)
        if s.name not in config:
            continue
        value = config[s.name]
        if s.name in chose:
            rows.append(SettingRow(s.group, s.name, value, AUTO, chose[s.name]))
        else:
            source = DEFAULT if _same(value, s.default) else SET
            rows.append(SettingRow(s.group, s.name, value, source, s.help.split(". ")[0]))
    for name in sorted(set(config) - known):
        rows.append(SettingRow("other", name, config[name], SET))
    return rows


def run_notes(log: list[LogLine]) -> list[LogLine]:
    """What the run said about how it trained (auto's other notes, the data layout, the starting
    weights, class balance, the time budget), without per-setting choices and skipped files."""
    return [
        line
        for line in log
        if not _AUTO.match(line.text)
        and not (line.level == "warning" and line.text.startswith(SKIPPED))
    ]


def _group_rank(group: str) -> int:
    from modelkit.config.declare import GROUPS

    return GROUPS.index(group) if group in GROUPS else len(GROUPS)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b
