"""Exported models against PyTorch fp32 on this CPU: speed, with the accuracy of each beside it.

For each trained run given, every export format is written with ``modelkit.serving.export``
(so it is proven on the run's validation images as users get it: agreement, accuracy, file
size) into a temporary folder, then all of them and the naive reference, the run's PyTorch
fp32 model in eager mode, are timed in this one process at batch 1 (latency) and batch 32
(throughput), taking turns call by call, at each ``--threads`` count (every runtime gets the
same number of threads). ONNX int8 is also quantised in the QOperator layout to compare with
the QDQ one modelkit writes. Targets of issue #28: int8 >= 2x PyTorch's batch-32 throughput and
>= 1.5x at batch 1, losing <= 0.5 accuracy points.

    python benchmarks/bench_export.py RUN_DIR [RUN_DIR ...] \\
        --json benchmarks/results/export_hymenoptera_cpu2.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from modelkit.serving import export, parity  # noqa: E402
from modelkit.serving.export_inputs import calibration_inputs, preprocess, split_images  # noqa: E402

TARGETS = {"speedup_batch32": 2.0, "speedup_batch1": 1.5, "max_accuracy_loss_points": 0.5}


def _runner(fmt: str, path: Path, threads: int) -> parity.Runner:
    """A runner of an export file with ``threads`` intra-op threads (0: the runtime's choice)."""
    if fmt.startswith("openvino"):
        from modelkit.serving.openvino_export import compile_model

        compiled = compile_model(path, threads)
        out = compiled.output("logits")
        return lambda x: compiled(x)[out]
    if fmt == "torchscript":
        model = torch.jit.load(str(path)).eval()

        def script(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()

        return script
    return export.onnx_runner(path, threads)


def _other_layout(loaded, out: Path, fp32: Path) -> tuple[str, Path, dict]:
    """The run quantised in the ONNX int8 layout modelkit does not write (QDQ or QOperator)."""
    from modelkit.serving.quantize import DEFAULT_FORMAT, quantize_onnx

    layout = "qdq" if DEFAULT_FORMAT == "qoperator" else "qoperator"
    x, _ = calibration_inputs(loaded, export.CALIBRATION_IMAGES)
    path = out / f"model.int8.{layout}.onnx"
    quantize_onnx(fp32, path, x.numpy(), quant_format=layout)
    images = split_images(loaded.run_dir, "val", limit=parity.MAX_IMAGES)
    table, _ = parity.compare(
        parity.torch_runner(loaded.model), export.onnx_runner(path), loaded.payload, images
    )
    return f"onnx-int8-{layout}", path, table["summary"]


def bench_run(run: Path, formats: list[str], threads: list[int], seconds: float) -> dict:
    loaded = export.load_run_model(run)
    images = split_images(loaded.run_dir, "val")
    sample, _ = preprocess(loaded.payload, images.paths[:32])
    result: dict = {
        "run": str(run),
        "arch": loaded.payload["arch"],
        "image_size": loaded.image_size,
        "classes": len(loaded.payload["classes"]),
        "val_images": len(images.paths),
        "formats": {},
        "speed": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        out = Path(tmp)
        paths = {}
        for fmt in formats:
            t0 = time.perf_counter()
            done = export.export_run(run, fmt, out, max_drop=100.0, timing=False)
            s = done.parity["summary"]
            result["formats"][fmt] = {
                "export_seconds": round(time.perf_counter() - t0, 1),
                "file_mb": round(s["file_bytes"] / 1e6, 2),
                **{k: s[k] for k in ("verified_on", "top1_agreement", "max_probability_diff")},
                "accuracy_pytorch": s["accuracy_pytorch"],
                "accuracy": s["accuracy_export"],
                "accuracy_change_points": None
                if s["accuracy_change"] is None
                else round(100 * s["accuracy_change"], 2),
                "per_class_worst_change_points": round(
                    100 * min((r["change"] for r in done.parity["per_class"]), default=0.0), 2
                ),
            }
            how = json.loads(done.card.read_text())["exports"][fmt].get("openvino")
            if how and "bias_correction" in how:  # which NNCF variant was kept, and on what
                result["formats"][fmt]["openvino_int8_choice"] = {
                    k: how[k] for k in ("bias_correction", "divergence_from_fp32") if k in how
                }
            paths[fmt] = done.path
            print(f"{run.name} {fmt}: {result['formats'][fmt]}", file=sys.stderr)
        if "onnx-int8" in formats and "onnx" in formats:
            name, path, summary = _other_layout(loaded, out, paths["onnx"])
            paths[name] = path
            result["formats"][name] = {
                "file_mb": round(path.stat().st_size / 1e6, 2),
                "top1_agreement": summary["top1_agreement"],
                "accuracy": summary["accuracy_export"],
                "accuracy_change_points": None
                if summary["accuracy_change"] is None
                else round(100 * summary["accuracy_change"], 2),
            }
        for n in threads:
            torch.set_num_threads(n)
            runners = {"pytorch-fp32 (reference)": parity.torch_runner(loaded.model)}
            runners.update({fmt: _runner(fmt, p, n) for fmt, p in paths.items()})
            load_before = os.getloadavg()[0]
            figures = parity.speed(runners, sample.numpy(), seconds)
            ref = figures["pytorch-fp32 (reference)"]
            for fig in figures.values():
                fig["speedup_batch1"] = round(
                    ref["latency_ms_batch1"] / fig["latency_ms_batch1"], 2
                )
                fig["speedup_batch32"] = round(
                    fig["throughput_batch32"] / ref["throughput_batch32"], 2
                )
                fig["latency_ms_batch1"] = round(fig["latency_ms_batch1"], 2)
                fig["throughput_batch32"] = round(fig["throughput_batch32"], 1)
            result["speed"][f"{n}_threads"] = {
                "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                **figures,
            }
            print(f"{run.name} {n} threads: {json.dumps(figures)}", file=sys.stderr)
    result["targets"] = _targets(result)
    return result


def _targets(result: dict) -> dict:
    """Whether each int8 export meets the issue's targets, at each thread count."""
    met = {}
    for fmt in ("onnx-int8", "openvino-int8", "onnx-int8-qoperator", "onnx-int8-qdq"):
        acc = result["formats"].get(fmt, {}).get("accuracy_change_points")
        if acc is None and fmt not in result["formats"]:
            continue
        for key, speed in result["speed"].items():
            if fmt in speed:
                met[f"{fmt} {key}"] = {
                    "batch32": speed[fmt]["speedup_batch32"] >= TARGETS["speedup_batch32"],
                    "batch1": speed[fmt]["speedup_batch1"] >= TARGETS["speedup_batch1"],
                    "accuracy": acc is None or -acc <= TARGETS["max_accuracy_loss_points"],
                }
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="trained run folders")
    parser.add_argument("--formats", default=",".join(export.FORMATS))
    parser.add_argument("--threads", default="1,2", help="thread counts to time, e.g. 1,2")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per figure and model")
    parser.add_argument("--json", default="benchmarks/results/export_cpu.json")
    parser.add_argument(
        "--max-images",
        type=int,
        default=parity.MAX_IMAGES,
        help="validation images each export is checked on, spread over the split (a 100-class "
        "run's whole split takes most of an hour per format on a busy 2-core machine)",
    )
    args = parser.parse_args()
    parity.MAX_IMAGES = args.max_images  # read by export_run and _other_layout at call time
    formats = [f for f in args.formats.split(",") if f]
    threads = [int(t) for t in args.threads.split(",")]
    import onnxruntime

    report = {
        "what": __doc__.splitlines()[0],
        "targets": TARGETS,
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "openvino": _version("openvino"),
            "nncf": _version("nncf"),
        },
        "note": "speedups are against PyTorch fp32 eager in the same process at the same thread "
        f"count; accuracy is on up to {args.max_images} images of each run's validation split",
        "runs": [bench_run(run, formats, threads, args.seconds) for run in args.runs],
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report["runs"][0]["targets"] if report["runs"] else {}, indent=2))
    print(args.json)


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:  # noqa: BLE001 - not installed
        return None


if __name__ == "__main__":
    main()
