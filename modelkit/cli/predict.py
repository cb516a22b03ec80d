"""``predict``: classify images (or folders of them) with a run's model, on any backend."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from modelkit.cli.common import EXIT_ERROR, UsageError, echo
from modelkit.csvcells import safe_cell
from modelkit.serving import BACKENDS


def _predict(args: argparse.Namespace) -> int:
    from modelkit.serving.onnx_backend import make_predictor

    if args.cam and args.backend != "pytorch":
        raise UsageError("--cam needs the pytorch backend (Grad-CAM uses the model's gradients)")
    if not 1 <= args.batch_size <= 1024:
        raise UsageError(f"--batch-size {args.batch_size}: use 1 to 1024 images")
    folders = [p for p in args.images if p.is_dir()]
    if folders and not args.csv:
        raise UsageError(f"{folders[0]} is a folder: its predictions go to a CSV, add --csv FILE")
    if folders and args.cam:
        raise UsageError("--cam is for single images; a folder's predictions go to the CSV only")
    if args.shard and not folders:
        raise UsageError("--shard splits folders: name a folder to predict")
    predictor = make_predictor(args.run_dir, args.backend, args.device, args.batch_size)
    if folders:
        return _predict_folder(predictor, args)
    return _predict_files(predictor, args)


def _predict_files(predictor: Any, args: argparse.Namespace) -> int:
    from modelkit.serving.folder_predict import csv_fields, prediction_row

    results = predictor.predict_many(
        [str(p) for p in args.images], args.top_k, explain=bool(args.cam)
    )
    failed = 0
    for n, r in enumerate(results):
        if r.error:
            echo(f"error: {r.error}", file=sys.stderr)
            failed += 1
            continue
        shown = ", ".join(f"{lab} {p:.3f}" for lab, p in zip(r.labels, r.probabilities))
        echo(f"{r.source}: {'unknown (' if r.unknown else ''}{shown}{')' if r.unknown else ''}")
        if args.cam:
            echo(
                f"  Grad-CAM: {_write_cam(r, Path(args.cam), n, args.cam_opacity)}", file=sys.stderr
            )
    if args.csv:
        fields = csv_fields(min(args.top_k, len(predictor.classes)))
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(
                {k: safe_cell(v) for k, v in prediction_row(r).items()} for r in results
            )
    # a named file that is not an image is the caller's mistake: say so in the exit status too
    return EXIT_ERROR if failed else 0


def _predict_folder(predictor: Any, args: argparse.Namespace) -> int:
    """Stream a folder of any size into --csv; the same command again continues after a kill."""
    from tqdm import tqdm

    from modelkit.serving.folder_predict import parse_shard, predict_folder

    try:
        shard = parse_shard(args.shard) if args.shard else (0, 1)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    bar = tqdm(unit="img", file=sys.stderr, dynamic_ncols=True, mininterval=1.0)

    def progress(s: Any) -> None:
        if bar.total is None:
            bar.reset(total=s.total - s.already_done)
        bar.update(s.written - bar.n)

    s = predict_folder(predictor, args.images, args.csv, args.top_k, shard, progress)
    bar.close()
    part = f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else ""
    echo(
        f"{s.csv}: {s.written} rows written at {s.rate:.1f} images/s{part}"
        + (f", {s.already_done} were there from an earlier run" if s.already_done else "")
        + (f", {s.not_images} files skipped that are not images by name" if s.not_images else ""),
        file=sys.stderr,
    )
    if s.recovered_torn_row:
        echo(
            "the last run stopped mid-row: that row was dropped and written again", file=sys.stderr
        )
    for reason in s.failures:
        echo(f"error: {reason}", file=sys.stderr)
    if s.failed > len(s.failures):
        echo(f"... and {s.failed - len(s.failures)} more unreadable (see the CSV)", file=sys.stderr)
    echo(s.csv)
    return EXIT_ERROR if s.written and s.failed == s.written else 0


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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="classify images, or folders of any size, with a run's model"
    )
    p.add_argument("run_dir", help="run folder or checkpoint file")
    p.add_argument("images", nargs="+", type=Path, help="image files, or folders to walk")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument(
        "--csv",
        help="write the results to this CSV (for folders: row by row; the same command again "
        "continues where a killed run stopped)",
    )
    p.add_argument(
        "--shard",
        metavar="I/N",
        help="predict only part I of N (0-based) of the folders' images, by a stable hash of "
        "each path: run N commands, each with its own --csv",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    p.add_argument(
        "--backend",
        default="pytorch",
        choices=BACKENDS,
        help="onnxruntime runs export/model.onnx on the CPU (exported first when missing)",
    )
    p.add_argument("--cam", metavar="OUT_DIR", help="write Grad-CAM overlays (PNG) to OUT_DIR")
    p.add_argument("--cam-opacity", type=float, default=0.5, help="overlay opacity 0..1")
    p.set_defaults(func=_predict)
