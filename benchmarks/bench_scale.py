"""How modelkit's costs grow with the size of a dataset and of the runs folder.

For each size it generates (once, cached under ``--cache-dir``) a folder of synthetic JPEGs of
realistic sizes (200x150 to 640x480, gradients plus noise so files weigh what photos of that size
weigh) over a few hundred classes, then measures in a fresh child process per step: scan, check
(build_report), decode cache build, one training epoch, evaluation, and the first load of the
Dataset, Evaluate and Runs pages (AppTest over app.py, as the app tests open them), each with
its peak RSS. Also a runs folder of ``--runs`` generated runs: RunStore.list, ``modelkit runs``
and the Runs page.

    python benchmarks/bench_scale.py --sizes 1000 10000 --cache-dir /tmp/scale
    python benchmarks/bench_scale.py --sizes 100000 --runs 0 --cache-dir /tmp/scale
    python benchmarks/bench_scale.py --sizes 60 --classes 6 --runs 20 --cache-dir /tmp/s
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STEPS = ("scan", "check", "cache", "train", "evaluate", "dataset_page", "evaluate_page")
RUN_STEPS = ("runs_list", "runs_cli", "runs_page")
_TORCH = ("torch", "modelkit.data.cache", "modelkit.data.report")
_APP = ("streamlit.testing.v1", "modelkit.runs.store", *_TORCH)
IMPORTS = {
    "check": _TORCH, "cache": _TORCH, "train": (*_TORCH, "modelkit.training.loop"),
    "evaluate": ("modelkit.evaluation.evaluate",), "runs_list": ("modelkit.runs.store",),
    "dataset_page": _APP, "evaluate_page": _APP, "runs_page": _APP,
}  # fmt: skip


# -- generated data -------------------------------------------------------------------------------
_TILES = None  # per worker process: a few large tiles of JPEG-weight noise, drawn once


def _noise_tiles():
    """Four 960x1280 tiles of Gaussian noise (sigma 12), the same in every worker: an image takes
    a window at a random offset, which costs a slice instead of drawing a photo's worth of noise
    per image (that draw was half the time of a file)."""
    global _TILES
    if _TILES is None:
        import numpy as np

        rng = np.random.default_rng(20260101)
        noise = rng.normal(0, 12, (4, 960, 1280, 3)).round().clip(-127, 127)
        _TILES = noise.astype(np.int16)
    return _TILES


def _write_image(job: tuple[str, int, int]) -> int:
    """One JPEG: a class-coloured gradient, a blob and noise, of a random realistic size."""
    import numpy as np
    from PIL import Image

    path, label, seed = job
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(200, 641)), int(rng.integers(150, 481))
    hue = np.array([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256], np.float32)
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = (hue * (0.5 + 0.5 * x) + (255 - hue) * 0.4 * y).astype(np.int16)
    cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(20, 80)
    yy, xx = np.ogrid[:h, :w]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    tiles = _noise_tiles()
    t = rng.integers(0, len(tiles))
    oy, ox = rng.integers(0, tiles.shape[1] - h + 1), rng.integers(0, tiles.shape[2] - w + 1)
    img += tiles[t, oy : oy + h, ox : ox + w]
    np.clip(img, 0, 255, out=img)
    Image.fromarray(img.astype(np.uint8)).save(path, "JPEG", quality=85)
    return os.path.getsize(path)


def make_images(folder: Path, n: int, classes: int, workers: int) -> dict:
    """``n`` JPEGs over ``classes`` class folders; reused when a finished one is there."""
    done = folder / ".complete.json"
    if done.is_file():
        return json.loads(done.read_text())
    for label in range(classes):
        (folder / f"class_{label:03d}").mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"class_{i % classes:03d}" / f"img_{i:06d}.jpg"), i % classes, i)
            for i in range(n)]  # fmt: skip
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        sizes = list(pool.map(_write_image, jobs, chunksize=64))
    info = {
        "images": n,
        "classes": classes,
        "bytes": sum(sizes),
        "generate_s": round(time.perf_counter() - start, 1),
        "workers": workers,
    }
    info["images_per_s"] = round(n / max(info["generate_s"], 0.1), 1)
    done.write_text(json.dumps(info))
    return info


def make_runs(folder: Path, n: int, epochs: int = 20, classes: int = 300) -> Path:
    """``n`` finished runs as training writes them (config, classes, splits, status, metrics),
    without checkpoints: what the Runs page and ``modelkit runs`` read."""
    from modelkit import TrainConfig
    from modelkit.runs.folder import RunFolder

    done = folder / ".complete"
    if done.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(data_dir="/data/photos", epochs=epochs).to_dict()
    names = [f"class_{c:03d}" for c in range(classes)]
    for r in range(n):
        run = RunFolder(folder / f"20260101-{r:06d}-resnet18-{r % 65536:04x}")
        run.path.mkdir(exist_ok=True)
        run.config.write_text(json.dumps(config))
        run.classes.write_text(json.dumps(names))
        started = f"2026-01-01T{r // 3600 % 24:02d}:{r // 60 % 60:02d}:{r % 60:02d}+00:00"
        rows = []
        for e in range(1, epochs + 1):
            acc = round(1 - 0.8 / e - (r % 7) / 100, 4)
            rows.append({"epoch": e, "train_loss": 2 / e, "val_loss": 2.1 / e, "val_acc": acc,
                         "lr": 0.01, "epoch_s": 30.0})  # fmt: skip
        run.metrics.write_text("".join(json.dumps(x) + "\n" for x in rows))
        status = {"state": "finished", "started_at": started, "updated_at": started}
        status.update(ended_at=started, active_s=600.0, epoch=epochs, best=rows[-1])
        run.status.write_text(json.dumps(status))
    done.touch()
    return folder


# -- steps, each run in a child process -----------------------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _newest_run(runs_dir: Path) -> Path:
    from modelkit.runs.folder import RunFolder

    runs = sorted(p for p in runs_dir.iterdir() if RunFolder(p).has_checkpoint())
    if not runs:
        raise SystemExit(f"no trained run in {runs_dir}: run the train step first")
    return runs[-1]


def _open_page(page: str, env: dict[str, str], state: dict | None = None) -> dict:
    """Seconds from starting the app to the full first draw of ``page`` (the Dataset page is the
    app's first page, so its check runs in the first run), and of a rerun of it."""
    os.environ.update(env)
    from streamlit.testing.v1 import AppTest

    start = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=3600)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page)
    at.run()
    first = time.perf_counter() - start
    if at.exception:
        raise SystemExit(f"{page}: {at.exception[0].message}")
    shown = {m.label: m.value for m in at.metric}
    start = time.perf_counter()
    at.run()
    return {"seconds": first, "rerun_s": round(time.perf_counter() - start, 3), "shown": shown}


def child(step: str, data: Path, work: Path, args: argparse.Namespace) -> dict:
    """Run one step and return its numbers (``seconds`` is the step's own wall time)."""
    from modelkit import scan_dataset

    env = {"MODELKIT_ALLOWED_ROOTS": str(work.parent), "MODELKIT_DATA_DIR": str(data.parent)}
    runs_dir = work / "runs"
    if step.startswith("runs_") or step == "evaluate_page":
        env["MODELKIT_RUNS_DIR"] = str(data if step.startswith("runs_") else runs_dir)
    for module in IMPORTS.get(step, ()):  # imports are not the step's cost
        importlib.import_module(module)
    base = _peak_rss_mb()
    start = time.perf_counter()
    out: dict = {}
    if step == "scan":
        out["images"] = len(scan_dataset(data).all_samples())
    elif step == "check":
        from modelkit.data.report import build_report

        index = scan_dataset(data)
        start = time.perf_counter()
        report = build_report(index)
        out["problems"] = len(report.problems)
    elif step == "cache":
        from modelkit.data.cache import ImageCache
        from modelkit.data.imageio import resize_size_for

        paths = [s.path for _, s in scan_dataset(data).all_samples()]
        start = time.perf_counter()
        cache = ImageCache(paths, resize_size_for(args.image_size), args.cache_ram_mb)
        out.update(cache_mb=round(cache.nbytes / 2**20, 1), on_disk=cache.on_disk)
    elif step == "train":
        out.update(_train(data, runs_dir, args))
    elif step == "evaluate":
        from modelkit.evaluation.evaluate import evaluate_run

        ev = evaluate_run(_newest_run(runs_dir), "val", device="cpu")
        out["images"] = len(ev.predictions)
    elif step == "dataset_page":
        from studio.state import DATASET_KEY

        out.update(_open_page("app_pages/dataset.py", env, {DATASET_KEY: str(data)}))
    elif step == "evaluate_page":
        _newest_run(runs_dir)  # an empty page would measure nothing
        out.update(_open_page("app_pages/evaluate.py", env))
    elif step == "runs_list":
        from modelkit.runs.store import RunStore

        out["runs"] = len(RunStore(data).list())
    elif step == "runs_cli":
        cmd = [sys.executable, "-m", "modelkit", "runs", "--runs-dir", str(data)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
        out["lines"] = len(done.stdout.splitlines())
        out["cli_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    elif step == "runs_page":
        out.update(_open_page("app_pages/runs.py", env))
    out.setdefault("seconds", time.perf_counter() - start)
    out["seconds"] = round(out["seconds"], 3)
    out.update(peak_rss_mb=round(_peak_rss_mb(), 1), start_rss_mb=round(base, 1))
    return out


def _train(data: Path, runs_dir: Path, args: argparse.Namespace) -> dict:
    """One epoch as the product trains (bf16 where the CPU has it); times from its events."""
    from modelkit import TrainConfig, Trainer
    from modelkit.events import CacheProgress, EpochEnd, RunStarted

    marks: dict[str, float] = {}

    def listen(event) -> None:
        if isinstance(event, CacheProgress) and event.done == event.total:
            marks.setdefault("decoded", time.perf_counter())
        elif isinstance(event, RunStarted):
            marks["started"] = time.perf_counter()
            marks["precision"] = event.precision  # type: ignore[assignment]
        elif isinstance(event, EpochEnd):
            marks["epoch"] = time.perf_counter()

    cfg = TrainConfig(
        data_dir=str(data), arch=args.arch, weights="none", image_size=args.image_size,
        epochs=1, batch_size=64, runs_dir=str(runs_dir), device="cpu",
        cache_ram_mb=args.cache_ram_mb,
    )  # fmt: skip
    start = time.perf_counter()
    result = Trainer(cfg, [listen]).fit()
    end = time.perf_counter()
    return {
        "seconds": end - start,
        "epoch_s": round(marks["epoch"] - marks["started"], 3),
        "setup_s": round(marks["started"] - start, 3),
        "precision": marks.get("precision"),
        "state": result.state,
    }


def _why_failed(done: subprocess.CompletedProcess | subprocess.TimeoutExpired, work: Path) -> dict:
    """What a failed child left: its exit status or the signal that killed it, the tail of its
    stderr (the traceback), and for training the tail of the run's own log."""
    out: dict = {}
    stderr = done.stderr or ""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    lines = stderr.strip().splitlines()
    code = getattr(done, "returncode", None)
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        out["error"] = f"killed by {name}" + (
            " (the kernel's OOM killer, or someone)" if name == "SIGKILL" else ""
        )
    else:
        out["error"] = lines[-1][:300] if lines else f"exit status {code}, nothing on stderr"
    out["returncode"] = code
    out["stderr_tail"] = "\n".join(lines[-25:])[-4000:]
    logs = sorted((work / "runs").glob("*/log.txt"))
    if logs:
        out["run_log_tail"] = logs[-1].read_text(errors="replace").splitlines()[-10:]
    return out


def _load_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_child(step: str, data: Path, work: Path, args: argparse.Namespace) -> dict:
    """One step in a fresh process. Besides its own numbers: the load average when it started and
    its CPU seconds, so a step slowed by other work on the machine shows it (a train epoch that
    shares two cores with a generator runs ~20x slower: cpu_s far below the cores' wall time)."""
    cmd = [sys.executable, __file__, "--child", step, "--data", str(data), "--work", str(work)]
    cmd += ["--image-size", str(args.image_size), "--arch", args.arch]
    cmd += ["--cache-ram-mb", str(args.cache_ram_mb)]
    load, before = _load_1m(), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.step_timeout, cwd=ROOT
        )
    except subprocess.TimeoutExpired as exc:
        return {**_why_failed(exc, work), "error": f"over {args.step_timeout}s"}
    if done.returncode != 0:
        return _why_failed(done, work)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_s"] = round(time.perf_counter() - start, 2)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    out.update(cpu_s=round(cpu, 2), load_1m_before=load)
    return out


# -- report ---------------------------------------------------------------------------------------
def table(result: dict) -> str:
    sizes = list(result["sizes"])
    lines = [f"{'step':<15}" + "".join(f"{s + ' images':>24}" for s in sizes)]
    for step in STEPS:
        cells = []
        for s in sizes:
            r = result["sizes"][s]["steps"].get(step, {})
            cell = r.get("error", "-") if "seconds" not in r else (
                f"{r['seconds']:.1f} s {r['peak_rss_mb']:.0f} MB"
            )  # fmt: skip
            cells.append(f"{cell[:22]:>24}")
        lines.append(f"{step:<15}" + "".join(cells))
    lines.append("")
    runs = result.get("runs", {})
    for step, r in runs.get("steps", {}).items():
        got = r.get("error") or f"{r['seconds']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
        lines.append(f"{step:<15}{runs['count']} runs: {got}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    p.add_argument("--classes", type=int, default=300, help="at most; fewer for tiny sizes")
    p.add_argument("--runs", type=int, default=1000, help="runs in the generated runs folder")
    p.add_argument("--cache-dir", type=Path, default=Path("/tmp/scale"))
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--arch", default="smallresnet")
    p.add_argument("--cache-ram-mb", type=int, default=4096)
    p.add_argument("--steps", nargs="+", default=list(STEPS + RUN_STEPS))
    p.add_argument("--step-timeout", type=int, default=3600)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data, args.work, args)))
        return

    cache = args.cache_dir.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    # One benchmark per cache folder at a time: a second one (generating 10k images on every
    # core) running beside the first's training step slowed its 1k epoch from ~20 s to 400 s.
    lock = open(cache / ".bench_scale.lock", "w")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"waiting for the other bench_scale.py that uses {cache} to end", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    keep = ("image_size", "arch", "cache_ram_mb", "classes")
    result: dict = {
        "machine": {**machine, "python": platform.python_version(), "load_1m": _load_1m()},
        "settings": {k: v for k, v in vars(args).items() if k in keep},
        "sizes": {},
    }
    for n in args.sizes:
        classes = max(2, min(args.classes, n // 10))
        data = cache / f"images-{n}-{classes}" / "data"
        info = make_images(data, n, classes, args.workers)
        work = cache / f"work-{n}-{classes}-{int(time.time())}"
        work.mkdir(parents=True)
        steps = {}
        for step in (s for s in STEPS if s in args.steps):
            steps[step] = run_child(step, data, work, args)
            print(f"{n} images, {step}: {steps[step]}", flush=True)
        result["sizes"][str(n)] = {"dataset": info, "steps": steps}
    run_steps = [s for s in RUN_STEPS if s in args.steps]
    if args.runs and run_steps:
        folder = make_runs(cache / f"runs-{args.runs}", args.runs)
        steps = {s: run_child(s, folder, cache, args) for s in run_steps}
        result["runs"] = {"count": args.runs, "epochs_per_run": 20, "steps": steps}
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
