"""Folder prediction at scale: `modelkit predict RUN FOLDER --csv` on many images.

Three figures, one invocation, one model, the same photos:
- the backend's own batch-32 throughput on images decoded beforehand (the ceiling, the mean of
  one measurement before the streamed run and one after; the target is >= 90% of it end to end);
- the naive reference: ``predict_many`` over chunks of 32 paths, decoding then classifying in turn
  (what a loop over the files does), and the streamed ``predict_folder`` in its default schedule
  (on a CPU: each batch decoded by a thread pool, then classified) and overlapped (decoding the
  next batches while the model runs);
- a kill -9 at half way and the same command again: each image must be in the CSV exactly once.
RSS is sampled through the streamed run (it should stay flat), and the CSV's accuracy (labels
are the photos' class folders) sits next to every speed figure.

    python benchmarks/bench_folder_predict.py --run runs/<id> \
        --source ../shared/datasets/hymenoptera_data --images 20000 \
        --json benchmarks/results/folder_predict_20k_cpu2.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelkit import Predictor  # noqa: E402
from modelkit.data.imageio import is_image_file  # noqa: E402
from modelkit.serving.folder_predict import predict_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def build_folder(source: Path, dest: Path, count: int) -> int:
    """``count`` hard links to the source's photos as dest/copyK/<class>/<name> (a link is a
    distinct path to predict, with the real bytes to decode)."""
    photos = sorted(p for p in source.rglob("*") if p.is_file() and is_image_file(p))
    made = 0
    while made < count:
        for photo in photos:
            if made == count:
                break
            target = dest / f"copy{made // len(photos)}" / photo.parent.name / photo.name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(photo, target)
            except OSError:
                target.write_bytes(photo.read_bytes())
            made += 1
    return made


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.every, self.stop = every, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append(rss_mb())
            self.stop.wait(self.every)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def accuracy(rows: list[dict[str, str]]) -> float:
    answered = [r for r in rows if not r["error"]]
    right = sum(Path(r["path"]).parent.name == r["label_1"] for r in answered)
    return right / max(1, len(answered))


def backend_ceiling(predictor: Predictor, photos: list[Path], repeat: int) -> tuple[float, float]:
    """Images per second and per CPU-second of the model alone at batch 32 on squares decoded
    beforehand."""
    squares = [predictor.preprocess(p) for p in photos[:32]]
    predictor.logits(squares)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        predictor.logits(squares)
    return 32 * repeat / (time.perf_counter() - start), 32 * repeat / (time.process_time() - cpu)


def naive_rate(predictor: Predictor, photos: list[Path]) -> tuple[float, float]:
    start = time.perf_counter()
    results = []
    for i in range(0, len(photos), 32):
        results += predictor.predict_many([str(p) for p in photos[i : i + 32]], top_k=1)
    seconds = time.perf_counter() - start
    right = sum(Path(r.source).parent.name == r.label for r in results if not r.error)
    return len(photos) / seconds, right / len(photos)


def kill_and_rerun(run: Path, folder: Path, out: Path, total: int) -> dict:
    cmd = [sys.executable, "-m", "modelkit", "predict", str(run), str(folder)]
    cmd += ["--csv", str(out), "--top-k", "1", "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        if out.exists() and out.stat().st_size and len(csv_rows(out)) >= total // 2:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = len(csv_rows(out))
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=7200)
    paths = [r["path"] for r in csv_rows(out)]
    return {
        "rows_at_kill": at_kill,
        "rows_after_rerun": len(paths),
        "distinct_paths": len(set(paths)),
        "each_image_once": len(paths) == len(set(paths)) == total,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a run folder (its best checkpoint)")
    ap.add_argument("--source", type=Path, required=True, help="class folders of photos")
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--naive-images", type=int, default=1000, help="images for the naive loop")
    ap.add_argument("--no-kill", action="store_true", help="skip the kill -9 and rerun check")
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="the model's threads (0: torch's choice); with 1, no OpenMP thread spins while it "
        "waits, so the per-CPU-second figures stay honest on a machine busy with other work",
    )
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        total = build_folder(args.source, folder, args.images)
        photos = sorted(p for p in folder.rglob("*") if p.is_file())
        predictor = Predictor(args.run, device="cpu")
        load_at_start = os.getloadavg()
        ceiling, ceiling_cpu = backend_ceiling(predictor, photos, repeat=10)
        naive, naive_acc = naive_rate(predictor, photos[: args.naive_images])
        sampler = RssSampler()
        sampler.start()
        out = Path(tmp) / "streamed.csv"
        cpu = time.process_time()  # every thread of this process: the decoders' work included
        summary = predict_folder(predictor, [folder], out, top_k=1)
        streamed_cpu = summary.written / (time.process_time() - cpu)
        sampler.stop.set()
        sampler.join()
        # again after each long run: on a machine whose load changes, the ceiling measured once,
        # minutes apart from the streamed run, can be off by several times
        ceilings = [(ceiling, ceiling_cpu), backend_ceiling(predictor, photos, repeat=10)]
        # the other schedule, the same photos: on a CPU the default takes turns (decoders, then
        # the model); overlapped, the decoders run while the model does
        other = Path(tmp) / "overlapped.csv"
        cpu = time.process_time()
        overlapped = predict_folder(predictor, [folder], other, top_k=1, overlap=True)
        overlapped_cpu = overlapped.written / (time.process_time() - cpu)
        ceilings.append(backend_ceiling(predictor, photos, repeat=10))
        ceiling = sum(c[0] for c in ceilings) / len(ceilings)
        ceiling_cpu = sum(c[1] for c in ceilings) / len(ceilings)
        rows = csv_rows(out)
        result = {
            "run": str(args.run),
            "arch": predictor.arch,
            "image_size": predictor.image_size,
            "source": str(args.source),
            "images": total,
            "cpu_count": os.cpu_count(),
            "model_threads": args.threads or "torch's choice",
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
            "backend_batch32_images_per_s": round(ceiling, 2),
            "naive_loop_images_per_s": round(naive, 2),
            "naive_loop_accuracy": round(naive_acc, 4),
            "streamed_images_per_s": round(summary.rate, 2),
            "streamed_accuracy": round(accuracy(rows), 4),
            "streamed_over_backend": round(summary.rate / ceiling, 3),
            "streamed_over_naive": round(summary.rate / naive, 3),
            # per CPU-second: what the streamed run costs beyond the model, which a machine
            # shared with other work (load average well above the cores) cannot blur as it
            # blurs wall-clock rates
            "backend_batch32_images_per_cpu_s": round(ceiling_cpu, 2),
            "streamed_images_per_cpu_s": round(streamed_cpu, 2),
            "streamed_over_backend_per_cpu_s": round(streamed_cpu / ceiling_cpu, 3),
            "backend_batch32_measurements": [round(c[0], 2) for c in ceilings],
            "streamed_schedule": "in turn" if predictor.device.type == "cpu" else "overlapped",
            "overlapped_images_per_s": round(overlapped.rate, 2),
            "overlapped_accuracy": round(accuracy(csv_rows(other)), 4),
            "overlapped_over_backend": round(overlapped.rate / ceiling, 3),
            "overlapped_images_per_cpu_s": round(overlapped_cpu, 2),
            "rows": len(rows),
            "unreadable": summary.failed,
            "rss_mb": {
                "first": round(sampler.samples[0], 1),
                "at_10pct": round(sampler.samples[len(sampler.samples) // 10], 1),
                "peak": round(max(sampler.samples), 1),
                "last": round(sampler.samples[-1], 1),
            },
        }
        if not args.no_kill:
            result["kill_and_rerun"] = kill_and_rerun(args.run, folder, Path(tmp) / "k.csv", total)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
