"""Using a trained run: ``evaluate``, ``calibrate``, ``export`` and ``embeddings``."""

from __future__ import annotations

import argparse
import json
import sys

from modelkit.cli.common import UsageError, echo
from modelkit.serving import EXPORT_FORMATS

SPLITS = ("train", "val", "test")


def _evaluate(args: argparse.Namespace) -> int:
    from modelkit.evaluation.evaluate import evaluate_run

    ev = evaluate_run(args.run_dir, args.split, device=args.device)
    if args.json:
        print(json.dumps(ev.to_dict(), indent=2))
        return 0
    echo(f"{args.split}: {ev.to_dict()['num_samples']} images")
    echo(f"accuracy  {ev.accuracy:.4f}")
    if ev.top5 is not None:
        echo(f"top-5     {ev.top5:.4f}")
    echo(f"macro F1  {ev.macro['f1']:.4f}")
    echo()
    width = max([len(r["class"]) for r in ev.per_class] + [12])
    echo(f"{'class':<{width}}  precision  recall     f1  support")
    for r in ev.per_class:
        echo(
            f"{r['class']:<{width}}  {r['precision']:9.3f}  {r['recall']:6.3f}  "
            f"{r['f1']:5.3f}  {r['support']:7d}"
        )
    for name, avg in (("macro avg", ev.macro), ("weighted avg", ev.weighted)):
        echo(f"{name:<{width}}  {avg['precision']:9.3f}  {avg['recall']:6.3f}  {avg['f1']:5.3f}")
    echo()
    echo("confusion matrix (rows: true, columns: predicted)")
    for cls, row in zip(ev.classes, ev.confusion_matrix):
        echo(f"{cls:<{width}}  " + " ".join(f"{v:5d}" for v in row))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from modelkit.evaluation.calibration import calibrate_run

    c = calibrate_run(args.run_dir, args.target, device=args.device)
    echo(f"temperature {c.temperature:.3f} (fitted on {c.samples} {c.split} images)")
    echo(f"ECE  {c.ece_before:.4f} -> {c.ece_after:.4f}")
    echo(f"NLL  {c.nll_before:.4f} -> {c.nll_after:.4f}")
    reached = "" if c.reached else f" (the {c.target_accuracy:.0%} target is not reachable)"
    echo(
        f"unknown below {c.threshold:.3f}: answers {c.coverage:.1%} of {c.split} "
        f"at {c.answered_accuracy:.1%} accuracy{reached}"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from modelkit.serving.export import ExportError, ExportRefused, export_run
    from modelkit.serving.parity import format_table

    if args.max_drop < 0:
        raise UsageError("--max-drop must be 0 or more (accuracy points the export may lose)")
    try:
        result = export_run(
            args.run_dir,
            args.format,
            args.out,
            max_drop=args.max_drop,
            timing=not args.no_timing,
            progress=lambda message: echo(f"{message}…", file=sys.stderr),
        )
    except ExportRefused as exc:  # the table first, then the one error line
        echo(format_table(exc.format, exc.parity), file=sys.stderr)
        raise ExportError(str(exc).splitlines()[0]) from None
    echo(f"max abs diff {result.max_abs_diff:.3g} on {result.samples} {result.sample_source}")
    echo(format_table(args.format, result.parity))
    echo(f"model card: {result.card}", file=sys.stderr)
    echo(result.path)
    return 0


def _embeddings(args: argparse.Namespace) -> int:
    from modelkit.evaluation.embeddings import compute_embeddings, save_embeddings

    emb = compute_embeddings(args.run_dir, args.split, args.checkpoint, args.device)
    try:
        out = save_embeddings(emb, args.out)
    except ValueError as exc:  # the --out name: neither .csv nor .npy
        raise UsageError(str(exc)) from None
    n, d = emb.features.shape
    echo(f"{n} images x {d} features of the {args.split} split", file=sys.stderr)
    echo(out)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run's best checkpoint on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="val", choices=SPLITS)
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_evaluate)

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

    p = sub.add_parser(
        "export",
        help="export a run's model (TorchScript, ONNX, OpenVINO; fp32 or int8), proven on its "
        "validation images",
    )
    p.add_argument("run_dir", help="run folder or checkpoint file")
    p.add_argument("--format", default="onnx", choices=EXPORT_FORMATS)
    p.add_argument("--out", help="folder to write to (default: RUN_DIR/export)")
    p.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        help="refuse the export (and write no file) when its validation accuracy falls more "
        "than this many points below PyTorch's (default 1)",
    )
    p.add_argument(
        "--no-timing",
        action="store_true",
        help="skip the latency and throughput measurement (the accuracy check still runs)",
    )
    p.set_defaults(func=_export)

    p = sub.add_parser("embeddings", help="export penultimate-layer features of a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="val", choices=SPLITS)
    p.add_argument("--out", required=True, help="FILE.csv or FILE.npy (structured: path, label…)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"))
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_embeddings)
