"""The report's sections about the model: curves, confusion matrix, per-class scores,
calibration and sample predictions with Grad-CAM. Each returns the section's inner HTML."""

from __future__ import annotations

from modelkit.report import svg
from modelkit.report.collect import RunFacts
from modelkit.report.html import esc, missing, number, para, percent, table

CURVES = (("loss", ("train_loss", "val_loss"), False), ("accuracy", ("train_acc", "val_acc"), True))
MOST_CONFUSED = 15
# Beyond this a matrix's cells are too small to read and its SVG could pass the size budget
# (one element per non-empty cell); the most confused pairs still say what matters.
MAX_MATRIX_CLASSES = 250


def curves(facts: RunFacts) -> str:
    rows = facts.metrics
    if facts.ensemble_curves and not rows:
        return para(facts.ensemble_curves)
    if not rows:
        return missing("This run has no per-epoch metrics (metrics.jsonl is empty or missing).")
    charts = []
    for title, keys, is_share in CURVES:
        series = {
            k.replace("_", " "): [(float(r["epoch"]), float(r[k])) for r in rows if k in r]
            for k in keys
        }
        charts.append(
            svg.line_chart(
                series,
                title.capitalize(),
                percent=is_share,
                y_range=(0.0, 1.0) if is_share else None,
                log_y=not is_share,
            )
        )
    if any("lr" in r for r in rows):
        lr = {"learning rate": [(float(r["epoch"]), float(r["lr"])) for r in rows if "lr" in r]}
        charts.append(svg.line_chart(lr, "Learning rate (end of epoch)"))
    last = rows[-1]
    said = ", ".join(
        f"{k.replace('_', ' ')} {number(last[k])}"
        for k in ("train_loss", "val_loss", "train_acc", "val_acc")
        if k in last
    )
    return f'<div class="figures">{"".join(charts)}</div>' + para(
        f"{len(rows)} epochs; the last: {said}.", "note"
    )


def confusion(facts: RunFacts) -> str:
    ev = facts.evaluation
    if ev is None:
        return missing(facts.evaluation_note)
    pairs = ev.most_confused(MOST_CONFUSED)
    support = {r["class"]: r["support"] for r in ev.per_class}
    body = para(
        f"Rows: the true class; columns: the predicted class ({ev.split} split). "
        "Hover a cell for its count.",
        "note",
    )
    if len(ev.classes) <= MAX_MATRIX_CLASSES:
        body += svg.confusion_matrix(ev.confusion_matrix, ev.classes)
    else:
        body = para(f"{len(ev.classes)} classes are too many to draw as one matrix.", "note")
    body += "<h3>Most confused pairs</h3>"
    if not pairs:
        return body + para("No confusions: every image of this split was classified correctly.")
    rows = [(t, p, n, percent(n / support[t]) if support.get(t) else "–") for t, p, n in pairs]
    return body + table(
        ["true", "predicted as", "images", "share of true class"], rows, [False, False, True, True]
    )


def per_class(facts: RunFacts) -> str:
    ev = facts.evaluation
    if ev is None:
        return missing(facts.evaluation_note)
    total = sum(int(r["support"]) for r in ev.per_class)
    rows = [
        (r["class"], r["precision"], r["recall"], r["f1"], int(r["support"])) for r in ev.per_class
    ]
    rows.sort(key=lambda r: r[3])  # the weakest classes first
    rows += [
        ("macro average", ev.macro["precision"], ev.macro["recall"], ev.macro["f1"], total),
        (
            "weighted average",
            ev.weighted["precision"],
            ev.weighted["recall"],
            ev.weighted["f1"],
            total,
        ),
    ]
    head = para("Weakest F1 first.", "note")
    return head + table(
        ["class", "precision", "recall", "F1", "images"],
        rows,
        [False, True, True, True, True],
        scroll=len(rows) > 25,
    )


def calibration(facts: RunFacts) -> str:
    cal = facts.calibration
    if not cal:
        return missing(
            "This run was not calibrated (modelkit calibrate RUN fits the temperature and the "
            "unknown threshold)."
        )
    reached = "reached" if cal.get("reached") else "not reached"
    try:
        rows = [
            ("temperature", number(float(cal["temperature"]))),
            (
                "ECE before → after",
                f"{float(cal['ece_before']):.3f} → {float(cal['ece_after']):.3f}",
            ),
            (
                "NLL before → after",
                f"{float(cal['nll_before']):.3f} → {float(cal['nll_after']):.3f}",
            ),
            (
                "unknown threshold",
                f"{float(cal['threshold']):.3f} (answers below it are 'unknown')",
            ),
            (
                "target accuracy of answered images",
                f"{percent(cal['target_accuracy'])} ({reached})",
            ),
            (
                "answered at the threshold",
                f"{percent(cal['coverage'])} of the images, "
                f"{percent(cal['answered_accuracy'])} right",
            ),
            ("fitted on", f"{cal.get('samples')} images of the {cal.get('split')} split"),
        ]
        chart = svg.reliability_diagram(cal.get("bins_before") or [], cal.get("bins_after") or [])
    except (KeyError, TypeError, ValueError) as exc:
        return missing(f"calibration.json cannot be read ({exc} missing or wrong).")
    return f'<div class="figures">{chart}<div>{table(["", ""], rows)}</div></div>'


def samples(facts: RunFacts) -> str:
    if facts.evaluation is None:
        return missing(facts.evaluation_note)
    if not facts.samples:
        return missing("No per-image predictions were saved with this evaluation.")
    out = para(
        "Wrong predictions first, then correct ones, highest loss first within each; "
        "each shows the crop the model saw and, beside it, Grad-CAM for the predicted "
        "class (red: what raised that class's score most).",
        "note",
    )
    if facts.samples_note:
        out += para(facts.samples_note, "note")
    for kind, title in (("wrong", "Wrong"), ("correct", "Correct, least sure first")):
        cards = [c for c in facts.samples if c.kind == kind]
        out += f"<h3>{esc(title)} ({len(cards)})</h3>"
        if not cards:
            out += para("None in this split.", "note")
            continue
        items = []
        for c in cards:
            name = c.path.replace("\\", "/").rsplit("/", 1)[-1]
            pics = (
                f'<img src="{c.image}" alt="image"> <img src="{c.cam}" alt="Grad-CAM">'
                if c.image
                else f'<span class="bad">{esc(c.problem)}</span>'
            )
            items.append(
                f'<div class="card">{pics}<br><b>{esc(c.true)}</b> → <b>{esc(c.predicted)}</b> '
                f"p={c.confidence:.2f}, loss={c.loss:.2f}<br>{esc(name)}</div>"
            )
        out += f'<div class="cards">{"".join(items)}</div>'
    return out
