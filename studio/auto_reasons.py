"""``auto``'s reasons in plain words, for the Train page: each choice under the label the form
shows that setting with, its value as a person writes it (``0.001``, ``yes``, ``1m30s``), and
why. ``auto`` itself keeps field names (the run's log and the command line speak them); the
name stays at hand in a tooltip, for someone who will type it as a flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from modelkit.config import Setting, schema
from studio.budget_input import budget_text, is_duration
from studio.text import md

# auto states a budget in seconds ("epochs fitted to the 120 s budget"); the page says it the
# way the budget box takes it ("2m")
_SECONDS_BUDGET = re.compile(r"(\d+(?:\.\d+)?) s (time )?budget")


@dataclass(frozen=True)
class Reason:
    """One of auto's choices, ready to show: Markdown text, and the tooltip naming the field."""

    text: str
    tooltip: str | None = None


def value_text(s: Setting | None, value: Any) -> str:
    """A setting's value as a person writes it: ``0.0001`` not ``1e-04``, ``yes`` not ``True``,
    a time budget as ``1m30s``."""
    if s is not None and is_duration(s):
        return budget_text(value) or "none"
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(Decimal(repr(value)), "f")
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(None, v) for v in value)
    return str(value)


def _budgets_in_words(text: str) -> str:
    return _SECONDS_BUDGET.sub(lambda m: f"{budget_text(float(m[1]))} {m[2] or ''}budget", text)


def plain_reasons(reasons: list[tuple[str, Any, str]]) -> list[Reason]:
    """``AutoRecipe.reasons`` (field or "", value, why) as lines for people."""
    by_name = {s.name: s for s in schema()}
    out = []
    for name, value, why in reasons:
        s = by_name.get(name)
        if s is None:  # a remark, not a setting ("epochs fitted to the budget")
            text = _budgets_in_words(f"{value} — {why}")
            out.append(Reason(md(text[0].upper() + text[1:])))
            continue
        flag = "--" + s.name.replace("_", "-")
        shown = f"**{md(s.label)}**: {md(value_text(s, value))} — {md(_budgets_in_words(why))}"
        out.append(Reason(shown, f"The setting `{s.name}` (command line: `{flag}`). {s.help}"))
    return out
