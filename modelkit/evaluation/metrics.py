"""Evaluation: the numbers and per-sample predictions people read to judge a model.

Everything is computed from logits and labels, so the trainer's final evaluation, the CLI's
``evaluate`` and the app share one implementation.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from modelkit.atomic import atomic_write_json, atomic_write_text
from modelkit.csvcells import read_cell, safe_cell
from modelkit.runs.folder import RunFolder


@dataclass
class Evaluation:
    split: str
    classes: list[str]
    accuracy: float
    top5: float | None
    loss: float
    macro: dict[str, float]
    weighted: dict[str, float]
    per_class: list[dict[str, Any]]
    confusion_matrix: list[list[int]]
    predictions: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, with_predictions: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_predictions:
            d.pop("predictions")
        d["macro_f1"] = self.macro["f1"]
        d["num_samples"] = int(sum(sum(r) for r in self.confusion_matrix))
        return d

    def most_confused(self, limit: int = 10) -> list[tuple[str, str, int]]:
        """(true, predicted, count) for the largest off-diagonal cells, as fastai lists them."""
        cm = np.asarray(self.confusion_matrix)
        pairs = [
            (self.classes[i], self.classes[j], int(cm[i, j]))
            for i in range(len(cm))
            for j in range(len(cm))
            if i != j and cm[i, j] > 0
        ]
        return sorted(pairs, key=lambda p: -p[2])[:limit]


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    if len(labels) == 0:
        return 0.0
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return float((top == labels[:, None]).any(dim=1).float().mean())


def evaluate_logits(
    logits: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    paths: Sequence[str] = (),
    split: str = "val",
) -> Evaluation:
    # scikit-learn loads here, not with the module: the training loop imports this module, and
    # with it the app's first page paid ~3 s for a library only evaluation uses
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    logits, labels = logits.float().cpu(), labels.long().cpu()
    n_cls = len(classes)
    probs = F.softmax(logits, dim=1)
    losses = F.cross_entropy(logits, labels, reduction="none") if len(labels) else torch.zeros(0)
    pred = probs.argmax(dim=1)
    y, p = labels.numpy(), pred.numpy()
    label_ids = list(range(n_cls))
    prec, rec, f1, support = precision_recall_fscore_support(
        y, p, labels=label_ids, zero_division=0
    )
    per_class = [
        {
            "class": classes[i],
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i in range(n_cls)
    ]

    def avg(kind: str) -> dict[str, float]:
        pr, rc, f, _ = precision_recall_fscore_support(
            y, p, labels=label_ids, average=kind, zero_division=0
        )
        return {"precision": float(pr), "recall": float(rc), "f1": float(f)}

    cm = confusion_matrix(y, p, labels=label_ids) if len(y) else np.zeros((n_cls, n_cls), int)
    predictions = []
    for i in range(len(labels)):
        predictions.append(
            {
                "path": paths[i] if i < len(paths) else "",
                "true": classes[y[i]],
                "predicted": classes[p[i]],
                "confidence": float(probs[i, p[i]]),
                "true_probability": float(probs[i, y[i]]),
                "loss": float(losses[i]),
                "correct": bool(y[i] == p[i]),
            }
        )
    return Evaluation(
        split=split,
        classes=list(classes),
        accuracy=float((pred == labels).float().mean()) if len(labels) else 0.0,
        top5=topk_accuracy(logits, labels, 5) if n_cls >= 5 else None,
        loss=float(losses.mean()) if len(labels) else 0.0,
        macro=avg("macro"),
        weighted=avg("weighted"),
        per_class=per_class,
        confusion_matrix=cm.astype(int).tolist(),
        predictions=predictions,
    )


PREDICTION_FIELDS = [
    "path",
    "true",
    "predicted",
    "confidence",
    "true_probability",
    "loss",
    "correct",
]


def save_evaluation(run_dir: str | Path, ev: Evaluation) -> Path:
    folder = RunFolder(run_dir)
    folder.check_writable()  # a foreign run's linked evaluation/ would take the files elsewhere
    atomic_write_json(folder.evaluation_report(ev.split), ev.to_dict())
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=PREDICTION_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(  # names other people chose are data, never spreadsheet formulas
        {k: safe_cell(v) for k, v in row.items()} for row in ev.predictions
    )
    atomic_write_text(folder.predictions(ev.split), buf.getvalue())
    return folder.evaluation_report(ev.split)


def load_evaluation(run_dir: str | Path, split: str = "val") -> Evaluation | None:
    folder = RunFolder(run_dir)
    try:
        data = json.loads(folder.evaluation_report(split).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    predictions = []
    try:
        with open(
            folder.predictions(split), encoding="utf-8", errors="surrogateescape",
            newline="",
        ) as f:  # fmt: skip
            for row in csv.DictReader(f):
                for key in ("path", "true", "predicted"):
                    row[key] = read_cell(row[key])
                for key in ("confidence", "true_probability", "loss"):
                    row[key] = float(row[key])
                row["correct"] = row["correct"] == "True"
                predictions.append(row)
    except (OSError, KeyError, ValueError):
        predictions = []
    if _evaluation_problem(data) is not None:
        return None  # a hand-edited or foreign file: treated as not evaluated yet
    names = set(data["classes"])
    predictions = [r for r in predictions if r["true"] in names and r["predicted"] in names]
    fields = {k: data.get(k) for k in Evaluation.__dataclass_fields__ if k != "predictions"}
    return Evaluation(**fields, predictions=predictions)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _evaluation_problem(data: Any) -> str | None:
    """Why a saved evaluation cannot be drawn (wrong types or shapes), or None."""
    from modelkit.names import classes_problem

    if not isinstance(data, dict):
        return "not an object"
    classes = data.get("classes")
    if classes_problem(classes, "classes"):
        return "classes"
    n = len(classes)
    if not all(_number(data.get(k)) for k in ("accuracy", "loss")):
        return "accuracy or loss"
    if data.get("top5") is not None and not _number(data["top5"]):
        return "top5"
    for key in ("macro", "weighted"):
        part = data.get(key)
        if not isinstance(part, dict) or not all(_number(v) for v in part.values()):
            return key
    if "f1" not in data["macro"]:
        return "macro"
    per_class = data.get("per_class")
    if not isinstance(per_class, list) or not all(
        isinstance(r, dict) and all(_number(v) or isinstance(v, str) for v in r.values())
        for r in per_class
    ):
        return "per_class"
    cm = data.get("confusion_matrix")
    if not (
        isinstance(cm, list)
        and len(cm) == n
        and all(
            isinstance(row, list)
            and len(row) == n
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in row)
            for row in cm
        )
    ):
        return "confusion_matrix"
    return None
