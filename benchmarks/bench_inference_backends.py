"""CPU inference latency of one model in three backends: PyTorch eager, TorchScript, ONNX Runtime.

Times the forward pass on preprocessed input (``N x 3 x S x S`` float32) for a single image and
a batch, median of many repeats after warm-up, and reports each backend's time as a ratio of
PyTorch eager (below 1: faster). The exports are the ones ``python -m modelkit export`` writes,
verified against PyTorch as they are written. Without ``--run`` an untrained checkpoint of the
architecture is made (latency does not depend on the weights).

    python benchmarks/bench_inference_backends.py --arch resnet18 --image-size 224 --batch 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from reference_loop import untrained_run  # noqa: E402

from modelkit.serving.export import export_run, load_run_model, onnx_session  # noqa: E402


def _timeit(backends: dict, x: torch.Tensor, repeat: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds per backend; the backends take turns in every repeat, so a load change on
    a shared machine hits them alike instead of skewing whichever ran during it."""
    for _ in range(warmup):
        for fn in backends.values():
            fn(x)
    samples: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(repeat):
        for name, fn in backends.items():
            t = time.perf_counter()
            fn(x)
            samples[name].append(time.perf_counter() - t)
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="run folder (default: an untrained checkpoint)")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=30, help="repeats for a single image")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads for every backend (0: torch's and onnxruntime's defaults); "
        "1 gives stable numbers on a busy shared machine, where 2 threads wait on each other",
    )
    parser.add_argument("--out", default="benchmarks/results/inference_backends_cpu.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else untrained_run(Path(tmp), args.arch, args.image_size)
        exports = {
            fmt: export_run(run, fmt, Path(tmp) / "export") for fmt in ("torchscript", "onnx")
        }
        loaded = load_run_model(run)
        size = loaded.image_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.load(str(exports["torchscript"].path)).eval()
        session = onnx_session(exports["onnx"].path, args.threads)
        eager_cl = loaded.model.to(memory_format=torch.channels_last)  # what Predictor runs

        def eager(x):
            with torch.no_grad():
                return eager_cl(x.contiguous(memory_format=torch.channels_last))

        def script(x):
            with torch.no_grad():
                return scripted(x)

        def ort(x):
            return session.run(["logits"], {"images": x.numpy()})

        backends = {"pytorch_eager": eager, "torchscript": script, "onnxruntime": ort}
        results: dict = {}
        for n, repeat in ((1, args.repeat), (args.batch, max(5, args.repeat // 6))):
            x = torch.randn(n, 3, size, size)
            times = _timeit(backends, x, repeat)
            base = times["pytorch_eager"]
            results[f"batch_{n}"] = {
                name: {
                    "ms": round(t * 1000, 2),
                    "images_per_s": round(n / t, 1),
                    "ratio_to_eager": round(t / base, 3),
                }
                for name, t in times.items()
            }
        report = {
            "arch": loaded.payload["arch"],
            "image_size": size,
            "threads": args.threads or "default",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at the end",
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
            "max_abs_diff": {fmt: r.max_abs_diff for fmt, r in exports.items()},
            "results": results,
        }
    print(json.dumps(report, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
