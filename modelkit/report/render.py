"""The report page from a run's facts: its sections, in reading order, each with a stable id."""

from __future__ import annotations

from collections.abc import Callable

from modelkit.report import sections_model as model
from modelkit.report import sections_run as run
from modelkit.report.collect import RunFacts
from modelkit.report.html import document, section

# id -> (title, renderer); the ids are the report's public anchors (report.html#confusion)
SECTIONS: dict[str, tuple[str, Callable[[RunFacts], str]]] = {
    "summary": ("Summary", run.summary),
    "data": ("Data card", run.data),
    "settings": ("Settings and where they came from", run.settings),
    "curves": ("Training curves", model.curves),
    "confusion": ("Confusion matrix", model.confusion),
    "per-class": ("Precision, recall and F1 per class", model.per_class),
    "calibration": ("Calibration", model.calibration),
    "samples": ("Sample predictions with Grad-CAM", model.samples),
    "label-issues": ("Label issues found by the cleaner", run.label_issues),
    "exports": ("Exports and their parity with PyTorch", run.exports),
    "environment": ("Environment", run.environment),
}
SECTION_IDS = tuple(SECTIONS)


def render(facts: RunFacts) -> str:
    """The whole self-contained HTML page."""
    ev = facts.evaluation
    scored = f" · {ev.split} accuracy {ev.accuracy:.1%}" if ev is not None else ""
    subtitle = f"{facts.config.get('arch', '?')} on {len(facts.classes)} classes{scored}"
    parts = [section(sid, title, draw(facts)) for sid, (title, draw) in SECTIONS.items()]
    return document(f"Run {facts.run_id}", subtitle, parts)
