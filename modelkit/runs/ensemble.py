"""An ensemble run: 2-3 finished runs' best checkpoints averaged into one model, written as a run
like any other (settings, splits, a best checkpoint, status, log, evaluations), so every page,
command and export that reads a run reads it.

Its members must answer the same question: the same classes in the same order (their logits are
averaged class by class), and none may have trained on an image the ensemble is judged on (its
splits are the first run's, so another member's training images must not be in its validation
or test split). Either is refused before anything is written, naming the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelkit.atomic import atomic_write_json
from modelkit.device import pick_device
from modelkit.errors import ModelkitError
from modelkit.events import Failed, Finished, Message, RunStarted
from modelkit.models.checkpoint import load_checkpoint, require_modelkit, save_checkpoint
from modelkit.models.ensemble import ENSEMBLE, MAX_MEMBERS, MIN_MEMBERS, ensemble_payload
from modelkit.models.metadata import validate_metadata
from modelkit.runs.folder import RunFolder
from modelkit.runs.lock import RunLock
from modelkit.runs.recorder import RunRecorder
from modelkit.runs.store import ENDED_STATES, RunStore, run_state

# settings of the first run that still describe the ensemble (its data, splits and inference)
KEPT_SETTINGS = ("data_dir", "val_ratio", "test_ratio", "seed", "tta", "device", "precision")


class EnsembleError(ModelkitError, ValueError):
    """The runs cannot make an ensemble; the message names the run and says why."""


def build_ensemble_run(
    run_dirs: Sequence[str | Path], runs_dir: str | Path, name: str = "", device: str = "auto"
) -> Path:
    """Write a new run in ``runs_dir`` whose model is the mean of the logits of ``run_dirs``'
    best checkpoints (2 or 3; the first's splits and settings are kept), evaluate it on its
    validation and test splits, and return its folder."""
    runs = [Path(r) for r in run_dirs]
    if not MIN_MEMBERS <= len(runs) <= MAX_MEMBERS:
        raise EnsembleError(
            f"an ensemble takes {MIN_MEMBERS} or {MAX_MEMBERS} runs, not {len(runs)}"
        )
    if len({r.resolve() for r in runs}) < len(runs):
        raise EnsembleError("the same run is named twice: an ensemble needs different runs")
    payloads = [_member(r) for r in runs]
    _check_classes(runs, payloads)
    splits = RunFolder(runs[0]).read_splits() or {}  # readable: _member checked it
    _check_no_leak(runs, splits)
    payload = ensemble_payload(payloads, [r.name for r in runs])
    config = _config(payloads[0]["config"], payload, runs, runs_dir, name)
    payload.update(config=config, epoch=None, metrics={})
    run_dir = RunStore(runs_dir).create(ENSEMBLE, name)
    with RunLock(run_dir):
        _write(run_dir, config, payload, splits)
        _evaluate(run_dir, payload, splits, device)
    return run_dir


def _member(run: Path) -> dict[str, Any]:
    """A finished run's best checkpoint, checked as inference checks it."""
    folder = RunFolder(run)
    if not folder.is_run():
        raise EnsembleError(f"{run}: not a run folder (no {folder.config.name})")
    state = run_state(run)["state"]
    if state not in ENDED_STATES:
        raise EnsembleError(f"run {run.name} is {state}: only a run that has ended can join")
    if folder.read_splits() is None:
        raise EnsembleError(f"run {run.name}: {folder.splits.name} cannot be read")
    checkpoint = folder.saved_checkpoint()
    if checkpoint is None:
        raise EnsembleError(f"run {run.name} has no checkpoint: it never finished an epoch")
    payload = validate_metadata(require_modelkit(load_checkpoint(checkpoint), checkpoint), run)
    if payload["arch"] == ENSEMBLE:
        members = ", ".join(str(m.get("run")) for m in payload["members"])
        raise EnsembleError(f"run {run.name} is an ensemble already: name its runs ({members})")
    return payload


def _check_classes(runs: list[Path], payloads: list[dict[str, Any]]) -> None:
    first = list(payloads[0]["classes"])
    for run, payload in zip(runs[1:], payloads[1:]):
        classes = list(payload["classes"])
        if classes != first:
            what = "in another order" if sorted(classes) == sorted(first) else "other classes"
            raise EnsembleError(
                f"run {run.name} has {what} than run {runs[0].name} ({_names(classes)} against "
                f"{_names(first)}): an ensemble averages scores class by class, so its runs need "
                "the same classes in the same order"
            )


def _names(classes: list[str], shown: int = 5) -> str:
    more = f", … {len(classes)} in all" if len(classes) > shown else ""
    return ", ".join(classes[:shown]) + more


def _check_no_leak(runs: list[Path], splits: dict[str, list]) -> None:
    """No member trained on an image of the first run's validation or test split."""
    judged = {str(row[0]) for s in ("val", "test") for row in splits.get(s, []) if row}
    for run in runs[1:]:
        trained = {str(row[0]) for row in (RunFolder(run).read_splits() or {}).get("train", [])}
        seen = judged & trained
        if seen:
            raise EnsembleError(
                f"run {run.name} trained on {len(seen)} of the images run {runs[0].name} holds "
                f"out for validation or testing (e.g. {sorted(seen)[0]}): the ensemble would be "
                "judged on images it has seen; use runs trained on the same split"
            )


def _config(
    first: dict[str, Any], payload: dict[str, Any], runs: list[Path], runs_dir, name: str
) -> dict[str, Any]:
    """The run's settings: what it is (``arch: ensemble``, ``ensemble_of`` its runs) and the
    first run's data and inference settings; no training settings, since it was not trained."""
    return {
        **{k: first[k] for k in KEPT_SETTINGS if k in first},
        "arch": ENSEMBLE,
        "ensemble_of": [r.name for r in runs],
        "image_size": int(payload["preprocess"]["image_size"]),
        "runs_dir": str(runs_dir),
        "run_name": name,
    }


def _write(run_dir: Path, config: dict, payload: dict, splits: dict[str, list]) -> None:
    folder = RunFolder(run_dir)
    atomic_write_json(folder.config, config)
    atomic_write_json(folder.classes, payload["classes"])
    atomic_write_json(folder.splits, splits)
    sizes = {s: len(v) for s, v in splits.items()}
    atomic_write_json(folder.dataset, {"images": sum(sizes.values()), "splits": sizes})
    folder.checkpoints.mkdir(exist_ok=True)
    save_checkpoint(folder.best, payload)


def _evaluate(run_dir: Path, payload: dict, splits: dict[str, list], device: str) -> None:
    """Evaluate the new run on its splits and record it as a finished run (failed, with the
    reason, when evaluating fails)."""
    from modelkit.evaluation.evaluate import evaluate_run  # late: it loads the Predictor

    recorder = RunRecorder(run_dir)
    train, val = len(splits.get("train", [])), len(splits.get("val", []))
    where = str(pick_device(device))
    precision = str(payload["config"].get("precision", ""))
    recorder(RunStarted(str(run_dir), {}, [], where, precision, train, val, 0, 0))
    members = [f"{m['run']} ({m['arch']}, {m['preprocess']['image_size']} px)" for m in
               payload["members"]]  # fmt: skip
    recorder(Message(f"ensemble of runs {', '.join(members)}: the mean of their logits"))
    best: dict[str, Any] = {}
    try:
        for split in [s for s in ("val", "test") if splits.get(s)]:
            ev = evaluate_run(run_dir, split, device=device)
            recorder(Message(f"{split} accuracy of the ensemble: {ev.accuracy:.3f}"))
            if split == "val":
                best = {"val_acc": ev.accuracy, "val_loss": ev.loss}
    except Exception as exc:
        recorder(Failed(str(run_dir), f"evaluating the ensemble failed: {exc}"))
        raise
    recorder.status["best"] = best
    recorder(Finished(str(run_dir), best, best, "completed"))
