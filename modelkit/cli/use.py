"""Using a trained run: ``evaluate``, ``predict``, ``export`` and ``embeddings``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from modelkit.cli.common import EXIT_ERROR, UsageError
from modelkit.csvcells import safe_cell

SPLITS = ("train", "val", "test")


def _evaluate(args: argparse.Namespace) -> int:
    from modelkit.evaluation.evaluate import evaluate_run

    ev = evaluate_run(args.run_dir, args.split, device=args.device)
    if args.json:
        print(json.dumps(ev.to_dict(), indent=2))
        return 0
    print(f"{args.split}: {ev.to_dict()['num_samples']} images")
    print(f"accuracy  {ev.accuracy:.4f}")
    if ev.top5 is not None:
        print(f"top-5     {ev.top5:.4f}")
    print(f"macro F1  {ev.macro['f1']:.4f}")
    print()
    width = max([len(r["class"]) for r in ev.per_class] + [12])
    print(f"{'class':<{width}}  precision  recall     f1  support")
    for r in ev.per_class:
        print(
            f"{r['class']:<{width}}  {r['precision']:9.3f}  {r['recall']:6.3f}  "
            f"{r['f1']:5.3f}  {r['support']:7d}"
        )
    for name, avg in (("macro avg", ev.macro), ("weighted avg", ev.weighted)):
        print(f"{name:<{width}}  {avg['precision']:9.3f}  {avg['recall']:6.3f}  {avg['f1']:5.3f}")
    print("\nconfusion matrix (rows: true, columns: predicted)")
    for cls, row in zip(ev.classes, ev.confusion_matrix):
        print(f"{cls:<{width}}  " + " ".join(f"{v:5d}" for v in row))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from modelkit.serving.onnx_backend import make_predictor

    predictor = make_predictor(args.run_dir, args.backend, device=args.device)
    results = predictor.predict_many([str(p) for p in args.images], args.top_k)
    failed = 0
    rows = []
    for r in results:
        if r.error:
            print(f"error: {r.error}", file=sys.stderr)
            failed += 1
            rows.append({"path": r.source, "error": r.error})
            continue
        shown = ", ".join(f"{lab} {p:.3f}" for lab, p in zip(r.labels, r.probabilities))
        print(f"{r.source}: {shown}")
        row: dict[str, Any] = {"path": r.source, "error": ""}
        for i, (lab, p) in enumerate(zip(r.labels, r.probabilities), 1):
            row[f"label_{i}"], row[f"probability_{i}"] = lab, round(p, 6)
        rows.append(row)
    if args.csv:
        fields = (
            ["path"]
            + [
                f"{k}_{i}"
                for i in range(1, min(args.top_k, len(predictor.classes)) + 1)
                for k in ("label", "probability")
            ]
            + ["error"]
        )
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: safe_cell(v) for k, v in row.items()} for row in rows)
    return EXIT_ERROR if failed == len(results) else 0


def _export(args: argparse.Namespace) -> int:
    from modelkit.serving.export import export_run

    result = export_run(args.run_dir, args.format, args.out)
    print(f"max abs diff {result.max_abs_diff:.3g} on {result.samples} {result.sample_source}")
    print(f"model card: {result.card}", file=sys.stderr)
    print(result.path)
    return 0


def _embeddings(args: argparse.Namespace) -> int:
    from modelkit.evaluation.embeddings import compute_embeddings, save_embeddings

    emb = compute_embeddings(args.run_dir, args.split, args.checkpoint, args.device)
    try:
        out = save_embeddings(emb, args.out)
    except ValueError as exc:  # the --out name: neither .csv nor .npy
        raise UsageError(str(exc)) from None
    n, d = emb.features.shape
    print(f"{n} images x {d} features of the {args.split} split", file=sys.stderr)
    print(out)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run's best checkpoint on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="val", choices=SPLITS)
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="classify images with a run's model")
    p.add_argument("run_dir", help="run folder or checkpoint file")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--csv", help="also write the results to this CSV file")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--backend",
        default="pytorch",
        choices=("pytorch", "onnxruntime"),
        help="onnxruntime runs export/model.onnx on the CPU (exported first when missing)",
    )
    p.set_defaults(func=_predict)

    p = sub.add_parser("export", help="export a run's model to TorchScript or ONNX, verified")
    p.add_argument("run_dir", help="run folder or checkpoint file")
    p.add_argument("--format", default="onnx", choices=("torchscript", "onnx"))
    p.add_argument("--out", help="folder to write to (default: RUN_DIR/export)")
    p.set_defaults(func=_export)

    p = sub.add_parser("embeddings", help="export penultimate-layer features of a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="val", choices=SPLITS)
    p.add_argument("--out", required=True, help="FILE.csv or FILE.npy (structured: path, label…)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_embeddings)
