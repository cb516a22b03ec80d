"""``python -m modelkit``: everything the app does, from a terminal or a training server.

Bad input exits non-zero with one line naming the problem; ``train`` ends by printing the run
folder on its own line so scripts can pick it up.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE, EXIT_INPUT, EXIT_FAILED, EXIT_STOPPED = 2, 1, 1, 130


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, so the CLI never lags behind the config."""
    from modelkit.config import TrainConfig

    hints = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for name, f in hints.items():
        if name == "data_dir":
            continue
        flag = "--" + name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if "bool" in kind:
            typ: Any = _bool
        elif "list" in kind:
            typ = _int_list
        elif "float" in kind:
            typ = float
        elif "int" in kind:
            typ = int
        else:
            typ = str
        p.add_argument(flag, dest=name, type=typ, default=None, help=f"default: {default}")


def _train(args: argparse.Namespace) -> int:
    from modelkit.config import ConfigError, TrainConfig
    from modelkit.training.distributed import is_main_process
    from modelkit.training.loop import Trainer, TrainingError
    from modelkit.training.progress import ProgressPrinter

    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name != "data_dir" and getattr(args, f.name, None) is not None
    }
    if args.resume:
        if overrides or args.data or args.recipe:
            return _fail("train --resume takes no data folder or other settings", EXIT_USAGE)
        trainer = Trainer.resume(args.resume)
    else:
        if not args.data:
            return _fail("train needs a DATA folder (or --resume RUN_DIR)", EXIT_USAGE)
        try:
            from modelkit.recipes import resolve_settings

            # explicit flags beat the recipe; ImageNet weights that cannot be had stop us here
            settings, note = resolve_settings(args.recipe, overrides)
            cfg = TrainConfig(data_dir=str(Path(args.data)), **settings)
        except ConfigError as exc:
            return _fail(str(exc).replace("\n", "; "), EXIT_USAGE)
        if note:
            print(f"note: {note}", file=sys.stderr)
        trainer = Trainer(cfg)
    printer = ProgressPrinter(sys.stderr)
    trainer.listeners.append(printer)
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        print("\nstopping after this batch (Ctrl-C again to abort)", file=sys.stderr)
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    # Only the main thread may set handlers; the previous one is put back afterwards, so calling
    # main() in-process (tests, notebooks) does not leave Ctrl-C rewired.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_signal) if in_main else None
    try:
        result = trainer.fit(stop)
    except TrainingError as exc:
        return _fail(f"training failed: {exc}", EXIT_FAILED)
    finally:
        printer.close()
        if in_main:
            signal.signal(signal.SIGINT, previous)
    if is_main_process():  # under torchrun only rank 0 reports
        print(_summary(result), file=sys.stderr)
        print(result.run_dir)
    return 0 if result.state == "finished" else EXIT_STOPPED


def _summary(result) -> str:
    def fmt(m: dict) -> str:
        keys = ("train_loss", "train_acc", "val_loss", "val_acc", "val_top5")
        return ", ".join(f"{k}={m[k]:.4f}" for k in keys if isinstance(m.get(k), (int, float)))

    lines = [f"run {result.state}: {result.run_dir}"]
    if result.best:
        lines.append(f"best  (epoch {result.best.get('epoch')}): {fmt(result.best)}")
    if result.last:
        lines.append(f"last  (epoch {result.last.get('epoch')}): {fmt(result.last)}")
    return "\n".join(lines)


def _check(args: argparse.Namespace) -> int:
    from modelkit.data.report import build_report, format_report
    from modelkit.data.scan import scan_dataset

    index = scan_dataset(args.data, args.val_ratio, args.test_ratio, args.seed)
    report = build_report(index)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
    return 0


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
    from modelkit.serving.export import ExportError
    from modelkit.serving.onnx_backend import make_predictor

    try:
        predictor = make_predictor(args.run_dir, args.backend, device=args.device)
    except ExportError as exc:  # onnxruntime missing, or the model would not export
        return _fail(str(exc).replace("\n", "; "), EXIT_FAILED)
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
            writer.writerows(rows)
    return EXIT_INPUT if failed == len(results) else 0


def _export(args: argparse.Namespace) -> int:
    from modelkit.serving.export import ExportError, export_run

    try:
        result = export_run(args.run_dir, args.format, args.out)
    except ExportError as exc:
        return _fail(str(exc).replace("\n", "; "), EXIT_FAILED)
    print(f"max abs diff {result.max_abs_diff:.3g} on {result.samples} {result.sample_source}")
    print(f"model card: {result.card}", file=sys.stderr)
    print(result.path)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from modelkit.runs.store import RunStore

    runs = RunStore(args.runs_dir).list()
    if args.json:
        out = [
            {
                "id": r.id,
                "path": str(r.path),
                "state": r.state,
                "arch": r.arch,
                "created": r.created,
                "duration_s": r.duration_s,
                "epochs_done": r.epochs_done,
                "epochs": r.epochs,
                "best": r.best,
                "config": r.config,
            }
            for r in runs
        ]
        print(json.dumps(out, indent=2))
        return 0
    if not runs:
        print(f"no runs in {args.runs_dir}")
        return 0
    print(f"{'run':<40} {'state':<11} {'epochs':>7} {'best val_acc':>12}  config")
    for r in runs:
        acc = f"{r.best_val_acc:.4f}" if isinstance(r.best_val_acc, (int, float)) else "-"
        print(f"{r.id:<40} {r.state:<11} {r.epochs_done:>3}/{r.epochs:<3} {acc:>12}  {r.summary()}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end in one 'error: ...' line like every other error (train's usage text,
    one flag per config field, would otherwise bury the message)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m modelkit", description="Train and use image classifiers on your folders."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="report on a dataset folder before training")
    p.add_argument("data", help="dataset folder: DATA/<class>/... or DATA/{train,val}/<class>/...")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--val-ratio", type=float, default=0.2)
    p.add_argument("--test-ratio", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_check)

    p = sub.add_parser("train", help="train a classifier; prints the run folder last")
    p.add_argument("data", nargs="?", help="dataset folder")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from last.pt")
    p.add_argument(
        "--recipe", default="", help="settings preset, e.g. few-images (flags still win)"
    )
    _add_config_flags(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="evaluate a run's best checkpoint on a split")
    p.add_argument("run_dir")
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
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

    p = sub.add_parser("runs", help="list runs with their state and best accuracy")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_runs)
    from modelkit.cli.search import add_parsers

    add_parsers(sub, _add_config_flags)  # tune, lr-find, embeddings
    return parser


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from modelkit.config import ConfigError
    from modelkit.data.scan import DatasetError
    from modelkit.device import DeviceError
    from modelkit.evaluation.evaluate import EvaluationError
    from modelkit.models.checkpoint import CheckpointError
    from modelkit.models.registry import WeightsError
    from modelkit.training.loop import TrainingError

    try:
        return args.func(args)
    except (
        DatasetError,
        ConfigError,
        CheckpointError,
        DeviceError,
        WeightsError,
        TrainingError,
        EvaluationError,
        FileNotFoundError,
        NotADirectoryError,
        PermissionError,
    ) as exc:
        return _fail(str(exc).replace("\n", "; "), EXIT_INPUT)
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}", EXIT_INPUT)
