"""Using a trained run: ``evaluate``, ``predict``, ``calibrate``, ``export`` and ``embeddings``."""

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

    if args.cam and args.backend != "pytorch":
        raise UsageError("--cam needs the pytorch backend (Grad-CAM uses the model's gradients)")
    predictor = make_predictor(args.run_dir, args.backend, device=args.device)
    sources = [str(p) for p in args.images]
    results = predictor.predict_many(sources, args.top_k, explain=bool(args.cam))
    failed = 0
    rows = []
    for n, r in enumerate(results):
        if r.error:
            print(f"error: {r.error}", file=sys.stderr)
            failed += 1
            rows.append({"path": r.source, "error": r.error})
            continue
        shown = ", ".join(f"{lab} {p:.3f}" for lab, p in zip(r.labels, r.probabilities))
        print(f"{r.source}: {'unknown (' if r.unknown else ''}{shown}{')' if r.unknown else ''}")
        if args.cam:
            print(
                f"  Grad-CAM: {_write_cam(r, Path(args.cam), n, args.cam_opacity)}", file=sys.stderr
            )
        row: dict[str, Any] = {"path": r.source, "unknown": r.unknown, "error": ""}
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
            + ["unknown", "error"]
        )
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: safe_cell(v) for k, v in row.items()} for row in rows)
    return EXIT_ERROR if failed == len(results) else 0


def _write_cam(result: Any, out_dir: Path, n: int, opacity: float) -> Path:
    """The Grad-CAM overlay of one prediction as OUT_DIR/<n>-<image name>-cam.png."""
    from PIL import Image

    from modelkit.serving.gradcam import overlay

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(result.source).stem[:80] or "image"
    path = out_dir / f"{n + 1:04d}-{stem}-cam-{result.cam_label[:40]}.png"
    path = path.with_name("".join(c if c.isalnum() or c in "-_." else "_" for c in path.name))
    Image.fromarray(overlay(result.view, result.cam, opacity)).save(path)
    return path


def _calibrate(args: argparse.Namespace) -> int:
    from modelkit.evaluation.calibration import calibrate_run

    c = calibrate_run(args.run_dir, args.target, device=args.device)
    print(f"temperature {c.temperature:.3f} (fitted on {c.samples} {c.split} images)")
    print(f"ECE  {c.ece_before:.4f} -> {c.ece_after:.4f}")
    print(f"NLL  {c.nll_before:.4f} -> {c.nll_after:.4f}")
    reached = "" if c.reached else f" (the {c.target_accuracy:.0%} target is not reachable)"
    print(
        f"unknown below {c.threshold:.3f}: answers {c.coverage:.1%} of {c.split} "
        f"at {c.answered_accuracy:.1%} accuracy{reached}"
    )
    return 0


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
    p.add_argument("--cam", metavar="OUT_DIR", help="write Grad-CAM overlays (PNG) to OUT_DIR")
    p.add_argument("--cam-opacity", type=float, default=0.5, help="overlay opacity 0..1")
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "calibrate", help="fit temperature scaling and the 'unknown' threshold on val"
    )
    p.add_argument("run_dir")
    p.add_argument(
        "--target",
        type=float,
        default=0.95,
        help="accuracy the answered images must reach; below its threshold: unknown",
    )
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_calibrate)

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
