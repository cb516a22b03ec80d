"""A run's report as one self-contained HTML file (``modelkit report RUN``).

People share results as a file. The report holds what a reader needs to judge a run without
modelkit or a network: the data card, the settings and where they came from, curves, the
confusion matrix, per-class scores, calibration, sample predictions with Grad-CAM, the cleaner's
changes, export parity and the environment. ``collect`` gathers the facts from the run folder,
``render`` formats them (charts as inline SVG, thumbnails as small base64 JPEGs; no script, no
outside resource), and the file is written atomically next to the run's other files.
"""

from __future__ import annotations

from pathlib import Path

from modelkit.atomic import atomic_write_text
from modelkit.report.collect import ReportError, RunFacts, collect
from modelkit.report.render import SECTION_IDS, render
from modelkit.runs.folder import RunFolder

__all__ = ["SECTION_IDS", "ReportError", "RunFacts", "collect", "render", "write_report"]


def write_report(run: str | Path, out: str | Path | None = None, device: str = "cpu") -> Path:
    """Write the report of the run in folder ``run`` to ``out`` (default: the run's own
    report.html) and return its path. A run with no saved evaluation is evaluated first on
    ``device`` (the CPU by default, so a report never competes with training for a GPU)."""
    if out is None:
        RunFolder(run).check_writable()
    path = Path(out) if out is not None else RunFolder(run).report
    atomic_write_text(path, render(collect(run, device)))
    return path
