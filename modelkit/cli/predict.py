"""``predict``: classify images (or folders of them) with a run's model, on any backend."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from modelkit.cli.common import EXIT_ERROR, UsageError
from modelkit.csvcells import safe_cell
from modelkit.serving import BACKENDS


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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with a run's model")
    p.add_argument("run_dir", help="run folder or checkpoint file")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--csv", help="also write the results to this CSV file")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--backend",
        default="pytorch",
        choices=BACKENDS,
        help="onnxruntime runs export/model.onnx on the CPU (exported first when missing)",
    )
    p.add_argument("--cam", metavar="OUT_DIR", help="write Grad-CAM overlays (PNG) to OUT_DIR")
    p.add_argument("--cam-opacity", type=float, default=0.5, help="overlay opacity 0..1")
    p.set_defaults(func=_predict)
