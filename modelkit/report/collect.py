"""Everything the report says, gathered once from the run folder (and evaluated when the run
has no saved evaluation), so rendering is pure formatting and a missing part is a note, not an
error: a run that was never calibrated, cleaned or exported still gets its report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelkit.errors import ModelkitError
from modelkit.evaluation.metrics import Evaluation, load_evaluation
from modelkit.report.datacard import DataCard, data_card
from modelkit.report.environment import report_rows, training_rows
from modelkit.report.provenance import SettingRow, run_notes, setting_rows
from modelkit.report.runlog import LogLine, read_log
from modelkit.report.samples import SampleCard, sample_cards
from modelkit.runs.folder import RunFolder, read_json
from modelkit.runs.members import curves_note, is_ensemble, no_training_settings
from modelkit.runs.store import read_metrics, run_state

EVALUATION_SPLITS = ("val", "test")  # the split a report judges the model on, in this order
MAX_JOURNAL_ROWS = 200
# How the run's log says which folder was used for what (modelkit.data.layouts' notes).
LAYOUT_NOTES = ("Split folders:", "No train/val/test folders")


class ReportError(ModelkitError, ValueError):
    """The folder is not a run a report can be written for; says why."""


@dataclass
class RunFacts:
    run_id: str
    status: dict[str, Any]
    config: dict[str, Any]
    classes: list[str]
    data: DataCard | None
    data_note: str
    settings: list[SettingRow]
    notes: list[LogLine]
    plan: dict[str, Any] | None
    metrics: list[dict[str, Any]]
    evaluation: Evaluation | None
    evaluation_note: str  # where the evaluation came from, or why there is none
    calibration: dict[str, Any] | None
    samples: list[SampleCard] = field(default_factory=list)
    samples_note: str = ""
    journal: list[dict[str, Any]] = field(default_factory=list)
    journal_note: str = ""
    export_card: dict[str, Any] | None = None
    training_env: list[tuple[str, str]] = field(default_factory=list)
    report_env: list[tuple[str, str]] = field(default_factory=list)
    # an ensemble run: what it averages, where a trained run has its curves and its settings
    ensemble_curves: str = ""
    ensemble_settings: str = ""


def collect(run: str | Path, device: str = "cpu") -> RunFacts:
    """The facts of the run in folder ``run``; ReportError when it is not a run."""
    folder = RunFolder(run)
    if not folder.is_run():
        raise ReportError(f"{folder.path}: not a run folder (no {folder.config.name})")
    config = read_json(folder.config, {})
    if not isinstance(config, dict):
        raise ReportError(f"{folder.config}: unreadable settings")
    classes = read_json(folder.classes, [])
    classes = [str(c) for c in classes] if isinstance(classes, list) else []
    splits = folder.read_splits() or {}
    log = read_log(folder)
    data, data_note = _data(classes, splits, str(config.get("data_dir", "")), log)
    evaluation, evaluation_note = find_evaluation(folder, splits, device)
    facts = RunFacts(
        run_id=folder.path.name,
        status=run_state(folder.path),
        config=config,
        classes=classes,
        data=data,
        data_note=data_note,
        settings=setting_rows(config, log),
        notes=run_notes(log),
        plan=_dict(read_json(folder.plan)),
        metrics=read_metrics(folder.path),
        evaluation=evaluation,
        evaluation_note=evaluation_note,
        calibration=_dict(read_json(folder.calibration)),
        export_card=_dict(read_json(_model_card(folder))),
    )
    if evaluation is not None:
        facts.samples, facts.samples_note = sample_cards(
            folder.saved_checkpoint(), evaluation.predictions, device
        )
    facts.journal, facts.journal_note = _journal(str(config.get("data_dir", "")))
    if is_ensemble(config):
        facts.ensemble_curves = curves_note(folder.path, config)
        facts.ensemble_settings = no_training_settings(config)
    facts.training_env = training_rows(facts.status)
    facts.report_env = report_rows(device)
    return facts


def find_evaluation(
    folder: RunFolder, splits: dict[str, list], device: str
) -> tuple[Evaluation | None, str]:
    """The saved evaluation of the first split that has one, else a fresh evaluation (saved
    with the run, as the Evaluate page's) of the first split with images; with a line saying
    which it is."""
    for split in EVALUATION_SPLITS:
        ev = load_evaluation(folder.path, split)
        if ev is not None:
            return ev, f"The saved evaluation of the {split} split."
    split = next((s for s in EVALUATION_SPLITS if splits.get(s)), None)
    if split is None:
        return None, "Not evaluated: the run has no validation or test images."
    if not folder.has_checkpoint():
        return None, "Not evaluated: the run has no checkpoint to evaluate."
    from modelkit.evaluation.evaluate import evaluate_run

    try:
        ev = evaluate_run(folder.path, split, device=device)
    except (ModelkitError, OSError, RuntimeError) as exc:
        return None, f"Not evaluated: {exc}"
    return ev, f"No saved evaluation: the {split} split was evaluated now, on {device}."


def _data(
    classes: list[str], splits: dict[str, list], root: str, log: list[LogLine]
) -> tuple[DataCard | None, str]:
    if not classes or not splits:
        return None, "The run's class or split list is missing or unreadable."
    layout = next((x.text for x in log if x.text.startswith(LAYOUT_NOTES)), "")
    try:
        return data_card(classes, splits, root, log, layout), ""
    except (ValueError, TypeError) as exc:  # a hand-edited split list
        return None, f"The run's split list cannot be read: {exc}"


def _journal(root: str) -> tuple[list[dict[str, Any]], str]:
    """The cleaner's changes to the data folder (newest last), or why there are none."""
    from modelkit.cleaning.journal import Journal

    if not root or not Path(root).is_dir():
        return [], "The data folder is not on this machine, so its cleaning journal is not either."
    try:
        journal = Journal(root)
        entries = journal.active()
    except (ModelkitError, OSError) as exc:
        return [], f"The cleaning journal cannot be read: {exc}"
    if not entries:
        return [], "The cleaner has made no changes to this data folder (modelkit clean DATA)."
    return [e.to_dict() for e in entries[-MAX_JOURNAL_ROWS:]], ""


def _model_card(folder: RunFolder) -> Path:
    """Where ``modelkit export`` keeps the card (modelkit.serving.export's CARD in its export
    folder), spelt here: importing the exporter would load ONNX for a report that only reads."""
    return folder.path / "export" / "model_card.json"


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
