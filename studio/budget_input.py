"""The time budget as a person types and reads it: ``10m``, ``90s``, ``1h30m``, as on the command
line (``--time-budget``), read by the schema's own parser so the two cannot disagree.

The budget is the setting ``auto`` plans around (how many epochs, which backbone fits), so the
Train page draws it next to the recipe, outside the form, and ``auto`` re-plans as it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelkit.config import Setting, schema
from modelkit.config.declare import PARSERS
from studio.text import md

BUDGET_LABEL = "Time budget"
BUDGET_KEY = "train_time_budget"  # str: what was typed in the Train page's budget box
EXAMPLES = "10m, 90s, 1h or 1h30m"


def _parser() -> Any:
    return PARSERS["duration"]


def is_duration(s: Setting) -> bool:
    """Whether ``s`` is typed as a duration (``10m``) rather than as a number of seconds."""
    return s.parse is not None and PARSERS[s.parse] is _parser()


def budget_setting() -> Setting:
    """The TrainConfig field a budget is typed into (the schema marks it, not its name)."""
    return next(s for s in schema() if is_duration(s))


def budget_text(seconds: float | None) -> str:
    """``10m``, ``1m30s``, ``1h30m``, ``45s``; empty for no budget (None or 0). What it says
    reads back to the same seconds through the parser."""
    if not seconds or seconds < 0:
        return ""
    if seconds < 60 and not float(seconds).is_integer():
        return f"{seconds:g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def parse_budget(text: str) -> float:
    """Seconds from what was typed; empty (or 0) is no budget. ValueError with
    a message for a person when it is not a duration."""
    if not text.strip():
        return 0.0
    try:
        return _parser()(text)
    except ValueError:
        raise ValueError(
            f"{text.strip()!r} is not a time budget: type it as {EXAMPLES} (or leave it empty "
            "to train for the epochs)"
        ) from None


@dataclass(frozen=True)
class Budget:
    """What the budget box holds: the seconds (0: none) or, when it did not parse, the problem."""

    seconds: float = 0.0
    problem: str = ""


def budget_input(cell: Any) -> Budget:
    """The budget text box in ``cell``, its problem said right under it."""
    s = budget_setting()
    text = cell.text_input(
        BUDGET_LABEL,
        key=BUDGET_KEY,
        placeholder="none: train for the epochs",
        help=f"{s.help} Typed as {EXAMPLES}; empty for none. auto plans its settings for it.",
    )
    try:
        return Budget(parse_budget(text))
    except ValueError as exc:
        cell.error(md(str(exc)), icon=":material/timer_off:")
        return Budget(problem=str(exc))


def given_budget(budget: Budget) -> dict[str, float]:
    """The budget as a setting the person gave, for the resolver ({} for none)."""
    return {budget_setting().name: budget.seconds} if budget.seconds else {}
