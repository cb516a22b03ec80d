"""Does watching a run slow it down? Training throughput alone vs. under rapid live-view reruns.

The app trains in a thread of the Streamlit server, and every open Train page redraws the live
view (a snapshot of the job plus three plotly figures) on a timer. This measures the same small
job several times in one process, with the same seed and the app's default settings:

- alone;
- ``figures``: another thread takes ``job.snapshot()`` and builds and serialises the live view's
  figures at each interval (what the fragment does, without Streamlit);
- ``apptest``: another thread reruns the whole Train page (form and live view) through
  Streamlit's AppTest at each interval, as a person clicking around the page would.

The live view's own timer is 1.5 s; 0.5 s and 0.1 s stand for someone clicking fast.

    python benchmarks/bench_reruns.py --repeats 3 --json out.json   # prints the slowdowns
    python benchmarks/bench_reruns.py --intervals 0.05 --modes apptest
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _figures_loop(job, stop: threading.Event, interval: float, counter: list[int], _) -> None:
    from studio.figures import accuracy_figure, batch_loss_figure, curves_figure

    while not stop.is_set():
        v = job.snapshot()
        figs = [batch_loss_figure(v.batch_losses), curves_figure(v.epoch_metrics)]
        if v.epoch_metrics:
            figs.append(accuracy_figure(v.epoch_metrics))
        for fig in figs:
            fig.to_json()  # what st.plotly_chart sends to the browser
        counter[0] += 1
        stop.wait(interval)


def _train_page():
    """An AppTest on the Train page, run once before training starts: the first run imports
    the pages and Streamlit's runtime, which a server has done long before anyone watches."""
    import streamlit.logger
    from streamlit.testing.v1 import AppTest, app_test

    streamlit.logger.set_log_level(logging.CRITICAL)  # a page error: one line below, not a flood
    # The server compiles each page once; AppTest compiles on every run, which is not the cost
    # a person's reruns put on a training server. Share one cache, as the server does.
    shared = app_test.ScriptCache()
    app_test.ScriptCache = lambda: shared
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/train.py")
    at.run()
    return at


def _apptest_loop(job, stop: threading.Event, interval: float, counter: list[int], at) -> None:
    while not stop.is_set():
        at.run()
        if at.exception and not counter[0]:
            print(f"warning: the Train page raised: {at.exception[0].value}", file=sys.stderr)
        counter[0] += 1
        stop.wait(interval)


def measure(data: Path, runs: Path, args, interval: float, watcher=None, page=None) -> dict:
    from modelkit import TrainConfig
    from studio.state import job_registry

    cfg = TrainConfig(
        data_dir=str(data), runs_dir=str(runs), weights="none", image_size=args.image_size,
        batch_size=args.batch_size, epochs=args.epochs, precision=args.precision,
        device=args.device,
        seed=0,
    )  # fmt: skip
    job = job_registry().launch(cfg)
    stop, counter = threading.Event(), [0]
    thread = None
    if watcher is not None:
        thread = threading.Thread(target=watcher, args=(job, stop, interval, counter, page))
        thread.start()
    started = time.perf_counter()
    job.join()
    wall = time.perf_counter() - started
    stop.set()
    if thread is not None:
        thread.join()
    view = job.snapshot()
    assert view.state == "finished", view.error
    steady = view.epoch_metrics[1:] or view.epoch_metrics  # epoch 1 includes decoding warm-up
    images = sum(r["images_per_second"] * r["epoch_seconds"] for r in steady)
    seconds = sum(r["epoch_seconds"] for r in steady)
    return {"images_per_second": images / seconds, "wall_s": wall, "redraws": counter[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--per-class", type=int, default=48)
    p.add_argument("--image-size", type=int, default=128)  # the Train page's CPU default
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument(
        "--intervals", default="1.5,0.5,0.1", help="seconds between redraws (1.5: the live view)"
    )
    p.add_argument("--modes", default="figures,apptest")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--repeats", type=int, default=1, help="rounds of all modes, interleaved")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto", help="the app's default; fp32 to turn bf16 off")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-reruns-") as scratch:  # 400 MB of runs
        _measure_all(args, Path(scratch))


def _measure_all(args: argparse.Namespace, tmp: Path) -> None:
    from conftest import write_dataset

    os.environ.setdefault("MODELKIT_RUNS_DIR", str(tmp / "runs"))
    os.environ.setdefault("MODELKIT_DATA_DIR", str(tmp))
    os.environ.setdefault("MODELKIT_ALLOWED_ROOTS", str(tmp))
    data = write_dataset(tmp / "data", args.classes, args.per_class, size=(96, 96))
    watchers = {"figures": _figures_loop, "apptest": _apptest_loop}
    intervals = [float(x) for x in args.intervals.split(",")]
    modes = [m for m in args.modes.split(",") if m != "alone"]
    trials: dict[str, list[dict]] = {}

    def record(name: str, r: dict) -> None:
        trials.setdefault(name, []).append(r)
        print(
            f"{name:>18}: {r['images_per_second']:7.1f} images/s  wall {r['wall_s']:6.1f} s  "
            f"redraws {r['redraws']}",
            flush=True,
        )

    for _ in range(args.repeats):  # interleaved, so drifting load on a shared machine is shared
        record("alone", measure(data, tmp / "runs", args, 0.0))
        for interval in intervals:
            for mode in modes:
                page = _train_page() if mode == "apptest" else None
                r = measure(data, tmp / "runs", args, interval, watchers[mode], page)
                record(f"{mode} {interval * 1000:.0f} ms", r)
    best = {name: max(r["images_per_second"] for r in t) for name, t in trials.items()}
    slowdown = {name: best["alone"] / v for name, v in best.items() if name != "alone"}
    print(f"\nslowdown of training (best of {args.repeats} each, alone / watched):")
    for name, ratio in slowdown.items():
        print(f"  {name:>18} reruns: {ratio:.3f}x")
    if args.json:
        out = {"args": vars(args), "trials": trials, "best": best, "slowdown": slowdown}
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
