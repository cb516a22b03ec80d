"""The report's sections about the run around the model: the summary, the data card, the
settings and where they came from, label issues, exports and the environment. Each returns the
section's inner HTML."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from modelkit.report.collect import RunFacts
from modelkit.report.html import esc, missing, number, para, percent, table

MAX_GROUPS = 50  # duplicate groups listed; the count says how many there are
MAX_SKIPPED = 200


def summary(facts: RunFacts) -> str:
    ev = facts.evaluation
    metrics = []
    if ev is not None:
        metrics += [("Accuracy", percent(ev.accuracy))]
        if ev.top5 is not None:
            metrics.append(("Top-5 accuracy", percent(ev.top5)))
        images = sum(map(sum, ev.confusion_matrix))
        metrics += [
            ("Macro F1", f"{ev.macro['f1']:.3f}"),
            ("Loss", f"{ev.loss:.3f}"),
            ("Images", f"{images:,}"),
        ]
    metrics += [
        ("Classes", str(len(facts.classes))),
        ("Architecture", str(facts.config.get("arch", "?"))),
    ]
    cells = "".join(f'<div class="metric">{esc(k)}<b>{esc(v)}</b></div>' for k, v in metrics)
    return f'<div class="headline">{cells}</div>' + para(facts.evaluation_note, "note")


def data(facts: RunFacts) -> str:
    card = facts.data
    if card is None:
        return missing(facts.data_note)
    splits = list(card.counts)
    out = para(f"Data folder: {card.root}", "note")
    if card.layout_note:
        out += para(card.layout_note, "note")
    rows = [
        [c, *(card.counts[s][c] for s in splits), sum(card.counts[s][c] for s in splits)]
        for c in card.classes
    ]
    rows.append(
        [
            "total",
            *(sum(card.counts[s].values()) for s in splits),
            sum(sum(v.values()) for v in card.counts.values()),
        ]
    )
    out += f"<h3>{len(card.classes)} classes, images per split</h3>"
    out += para("As the run listed them; the images it could not use are named below.", "note")
    out += table(
        ["class", *splits, "all"], rows, [False] + [True] * (len(splits) + 1), scroll=len(rows) > 25
    )
    if card.examples:
        thumbs = "".join(
            f'<div class="thumb"><img src="{uri}" alt="">{esc(name)}</div>'
            for name, uri in card.examples.items()
        )
        out += f'<h3>One image per class</h3><div class="thumbs">{thumbs}</div>'
    out += "<h3>Duplicates and leakage</h3>"
    if not card.duplicates:
        out += para("No identical files: no image is in two splits or under two labels.")
    else:
        out += para(
            f"{len(card.duplicates)} groups of identical files; {len(card.leaks)} span more than "
            "one split (the evaluation saw training images), "
            f"{len(card.conflicts)} carry different labels."
        )
        groups = sorted(card.duplicates, key=lambda g: not (g["cross_split"] or g["cross_class"]))
        rows = [
            (
                "; ".join(
                    f"{card.rel(p)} ({c}, {s})"
                    for p, c, s in zip(g["paths"], g["classes"], g["splits"])
                ),
                "different labels"
                if g["cross_class"]
                else "across splits"
                if g["cross_split"]
                else "same class and split",
            )
            for g in groups[:MAX_GROUPS]
        ]
        out += table(["files (class, split)", "kind"], rows, scroll=len(rows) > 15)
    out += "<h3>Images skipped</h3>"
    if not card.skipped:
        out += para("None: every listed image decoded.")
    else:
        n = len(card.skipped)
        out += para(f"{n} {'image' if n == 1 else 'images'} could not be used:")
        rows = [(card.rel(p), why) for p, why in card.skipped[:MAX_SKIPPED]]
        out += table(["file", "why"], rows, scroll=len(rows) > 15)
    return out


def settings(facts: RunFacts) -> str:
    out = ""
    if facts.ensemble_settings:
        said = facts.ensemble_settings
        out += para(
            f"{said[:1].upper()}{said[1:]}. Below are those it keeps of the first: its data, "
            "splits and how it predicts."
        )
    plan = facts.plan
    if plan:
        said = plan.get("summary") or plan.get("why") or ""
        out += para(
            f"Planned {plan.get('epochs', '?')} epochs "
            f"(asked: {plan.get('asked_epochs', '?')}). {said}".strip()
        )
    if facts.notes:
        notes = "".join(f"<li>{esc(n.text)}</li>" for n in facts.notes if n.level != "error")
        out += f"<h3>What the run said as it trained</h3><ul>{notes}</ul>"
    if not facts.settings:
        return out + missing("The run's settings (config.json) list no known setting.")
    rows = [(r.group, r.name, _value(r.value), r.source, r.reason) for r in facts.settings]
    out += "<h3>Every setting</h3>"
    return out + table(
        ["group", "setting", "value", "from", "why / what it does"], rows, scroll=True
    )


def label_issues(facts: RunFacts) -> str:
    if not facts.journal:
        return missing(facts.journal_note)
    started = _timestamp(facts.status.get("started_at"))
    counts: dict[str, int] = {}
    for e in facts.journal:
        counts[e["action"]] = counts.get(e["action"], 0) + 1
    said = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    out = para(
        f"The cleaner's changes to the data folder in force now: {said}. Changes made "
        "after this run started are not in its training; retrain to use them."
    )
    rows = [
        (
            e["id"],
            e["action"],
            e["src"],
            "" if e["action"] == "keep" else e["dst"],
            "after" if started is not None and float(e.get("time", 0)) > started else "before",
        )
        for e in facts.journal
    ]
    return out + table(
        ["#", "change", "file", "moved to", "vs this run's start"],
        rows,
        [True],
        scroll=len(rows) > 15,
    )


def exports(facts: RunFacts) -> str:
    card = facts.export_card
    made = card.get("exports") if card else None
    if not isinstance(made, dict) or not made:
        return missing(
            "No exports yet (modelkit export RUN --format onnx writes one, verified against "
            "PyTorch)."
        )
    out = ""
    for fmt, info in made.items():
        if not isinstance(info, dict):
            continue
        scalars = [
            (k, _value(v))
            for k, v in info.items()
            if k != "parity" and not isinstance(v, (dict, list))
        ]
        out += f"<h3>{esc(fmt)}</h3>" + table(["", ""], scalars)
        parity = info.get("parity")
        if not isinstance(parity, dict):
            out += para(
                "No parity table for this export (made before exports were checked per class).",
                "note",
            )
            continue
        summary_ = parity.get("summary")
        if isinstance(summary_, dict):
            out += table(["parity with PyTorch", ""], [(k, _value(v)) for k, v in summary_.items()])
        out += _records(parity.get("per_class"))
    return out or missing("The export card lists no readable export.")


def environment(facts: RunFacts) -> str:
    out = "<h3>Training</h3>" + (
        table(["", ""], facts.training_env)
        if facts.training_env
        else missing("status.json records nothing.")
    )
    return out + "<h3>This report</h3>" + table(["", ""], facts.report_env)


def _records(value: Any) -> str:
    """A per-class table from a list of dicts or a dict of dicts (class -> numbers)."""
    if isinstance(value, dict):
        value = [
            {"class": k, **(v if isinstance(v, dict) else {"value": v})} for k, v in value.items()
        ]
    if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
        return ""
    keys: list[str] = []
    for r in value:
        keys += [k for k in r if k not in keys]
    rows = [[_value(r.get(k, "")) for k in keys] for r in value]
    return table(keys, rows, scroll=len(rows) > 15)


def _value(v: Any) -> Any:
    if isinstance(v, float):
        return number(v, 4)
    return v if isinstance(v, (int, str)) and not isinstance(v, bool) else json.dumps(v)


def _timestamp(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).astimezone(UTC).timestamp()
    except ValueError:
        return None
