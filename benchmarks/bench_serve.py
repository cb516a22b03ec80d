"""Load test of ``modelkit serve`` on localhost: dynamic batching against one image at a time.

Three ways to answer the same ``--requests`` single-image requests (JPEG photos of a realistic
size, decoded and resized like any upload):

- ``predictor``: ``Predictor.predict`` called once per image in this process, one after another
  (the reference: what a script calling the library does, with no HTTP at all);
- ``server, no batching``: the HTTP server with ``max_batch=1`` and ``--clients`` concurrent
  clients;
- ``server, batching``: the same server with ``max_batch=--max-batch`` and a ``--max-wait-ms``
  wait, so requests arriving together share a forward pass.

For each: throughput (images/s) and p50/p99 latency per request, and for the server the batch
sizes it ran. Everything stays on 127.0.0.1 and every request has a timeout, so the run is
bounded. Without a RUN folder an untrained checkpoint of ``--arch`` is made (speed does not
depend on the weights).

    python benchmarks/bench_serve.py runs/<run-id> --clients 8 --requests 200
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from reference_loop import untrained_run  # noqa: E402

from modelkit.serving.http_client import predict_files  # noqa: E402
from modelkit.serving.onnx_backend import make_predictor  # noqa: E402
from modelkit.serving.server import PredictionService, create_app, running  # noqa: E402


def _photos(count: int, size: tuple[int, int] = (640, 480)) -> list[bytes]:
    """JPEGs of a phone-photo-like size with smooth content (they compress like photos)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize(size, Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def _summary(latencies: list[float], wall: float) -> dict:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {
        "requests": len(latencies),
        "seconds": round(wall, 3),
        "images_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
    }


def bench_predictor(predictor, photos: list[bytes], requests: int) -> dict:
    """One image at a time, in a worker thread like the server's batch worker: on a busy CPU
    torch's thread pool behaves very differently in the main thread, which would skew this."""
    latencies: list[float] = []
    took: list[float] = []

    def work() -> None:
        predictor.predict(io.BytesIO(photos[0]))  # warm-up
        start = time.perf_counter()
        for i in range(requests):
            t = time.perf_counter()
            predictor.predict(io.BytesIO(photos[i % len(photos)]))
            latencies.append(time.perf_counter() - t)
        took.append(time.perf_counter() - start)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return _summary(latencies, took[0])


def bench_server(
    predictor, photos: list[bytes], requests: int, clients: int, max_batch: int, wait_s: float
) -> dict:
    service = PredictionService(predictor, max_batch=max_batch, max_wait_s=wait_s)
    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(requests))
    lock = threading.Lock()
    with running(create_app(service)) as url:
        predict_files(url, [("warm.jpg", photos[0])])
        warm = service.batcher.stats()["batch_sizes"]

        def client() -> None:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t = time.perf_counter()
                status, answer = predict_files(url, [(f"{i}.jpg", photos[i % len(photos)])])
                elapsed = time.perf_counter() - t
                with lock:
                    latencies.append(elapsed)
                    if status != 200:
                        failures.append(f"{status}: {answer}")

        threads = [threading.Thread(target=client) for _ in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        sizes = service.batcher.stats()["batch_sizes"]
    sizes = {k: v - warm.get(k, 0) for k, v in sizes.items() if v - warm.get(k, 0)}
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    batches = sum(sizes.values())
    return {
        **_summary(latencies, wall),
        "clients": clients,
        "max_batch": max_batch,
        "mean_batch": round(sum(k * v for k, v in sizes.items()) / max(batches, 1), 2),
        "batch_sizes": sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", nargs="?", help="run folder (default: an untrained --arch)")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--backend", default="pytorch", choices=["pytorch", "onnxruntime"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 1 <= args.requests <= 100_000 or not 1 <= args.clients <= 256:
        parser.error("--requests must be 1..100000 and --clients 1..256")

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else untrained_run(Path(tmp), args.arch, args.image_size)
        predictor = make_predictor(run, args.backend, args.device)
        photos = _photos(16)
        wait = args.max_wait_ms / 1000
        results = {
            "predictor": bench_predictor(predictor, photos, args.requests),
            "server, no batching": bench_server(
                predictor, photos, args.requests, args.clients, 1, 0.0
            ),
            "server, batching": bench_server(
                predictor, photos, args.requests, args.clients, args.max_batch, wait
            ),
        }
    base = results["predictor"]["images_per_s"]
    print(f"{'':22} {'images/s':>9} {'x predictor':>11} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6}")
    for name, r in results.items():
        print(
            f"{name:22} {r['images_per_s']:9.1f} {r['images_per_s'] / base:11.2f} "
            f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r.get('mean_batch', 1):6.1f}"
        )
    report = {
        "run": str(run) if args.run else f"untrained {args.arch}",
        "arch": predictor.arch,
        "image_size": predictor.image_size,
        "backend": args.backend,
        "device": str(predictor.device),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "requests": args.requests,
        "clients": args.clients,
        "max_wait_ms": args.max_wait_ms,
        "results": results,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
