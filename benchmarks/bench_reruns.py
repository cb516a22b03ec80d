"""Does watching a run slow it down? Training throughput alone vs. under rapid live-view reruns.

The app trains in a thread of the Streamlit server, and every open Train page redraws the live
view (a snapshot of the job plus three plotly figures) on a timer. This measures the same small
job three times in one process, with the same seed:

- alone;
- ``figures``: another thread takes ``job.snapshot()`` and builds and serialises the live view's
  figures every 50 ms (what the fragment does, without Streamlit);
- ``apptest``: another thread reruns the real Train page through Streamlit's AppTest every 50 ms.

    python benchmarks/bench_reruns.py                 # all three, prints the slowdown ratios
    python benchmarks/bench_reruns.py --epochs 4 --image-size 96
"""

from __future__ import annotations

import argparse
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


def _figures_loop(job, stop: threading.Event, interval: float, counter: list[int]) -> None:
    from modelkit.plots import accuracy_figure, batch_loss_figure, curves_figure

    while not stop.is_set():
        v = job.snapshot()
        figs = [batch_loss_figure(v.batch_losses), curves_figure(v.epoch_metrics)]
        if v.epoch_metrics:
            figs.append(accuracy_figure(v.epoch_metrics))
        for fig in figs:
            fig.to_json()  # what st.plotly_chart sends to the browser
        counter[0] += 1
        stop.wait(interval)


def _apptest_loop(job, stop: threading.Event, interval: float, counter: list[int]) -> None:
    import streamlit.logger
    from streamlit.testing.v1 import AppTest

    streamlit.logger.set_log_level(logging.CRITICAL)  # a page error: one line below, not a flood
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/train.py")
    while not stop.is_set():
        at.run()
        if at.exception and not counter[0]:
            print(f"warning: the Train page raised: {at.exception[0].value}", file=sys.stderr)
        counter[0] += 1
        stop.wait(interval)


def measure(data: Path, runs: Path, args, watcher=None) -> dict:
    from modelkit.config import TrainConfig
    from studio.state import job_registry

    cfg = TrainConfig(
        data_dir=str(data), runs_dir=str(runs), weights="none", image_size=args.image_size,
        batch_size=args.batch_size, epochs=args.epochs, precision="fp32", device=args.device,
        seed=0,
    )  # fmt: skip
    job = job_registry().launch(cfg)
    stop, counter = threading.Event(), [0]
    thread = None
    if watcher is not None:
        thread = threading.Thread(target=watcher, args=(job, stop, args.interval, counter))
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
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.05, help="seconds between redraws")
    p.add_argument("--modes", default="alone,figures,apptest")
    p.add_argument("--repeats", type=int, default=1, help="rounds of all modes, interleaved")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    from conftest import write_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench-reruns-"))
    os.environ.setdefault("MODELKIT_RUNS_DIR", str(tmp / "runs"))
    os.environ.setdefault("MODELKIT_DATA_DIR", str(tmp))
    os.environ.setdefault("MODELKIT_ALLOWED_ROOTS", str(tmp))
    data = write_dataset(tmp / "data", args.classes, args.per_class, size=(96, 96))
    watchers = {"alone": None, "figures": _figures_loop, "apptest": _apptest_loop}
    trials: dict[str, list[dict]] = {}
    for _ in range(args.repeats):  # interleaved, so drifting load on a shared machine is shared
        for mode in args.modes.split(","):
            r = measure(data, tmp / "runs", args, watchers[mode])
            trials.setdefault(mode, []).append(r)
            print(
                f"{mode:>8}: {r['images_per_second']:7.1f} images/s  wall {r['wall_s']:6.1f} s  "
                f"redraws {r['redraws']}",
                flush=True,
            )
    results = {m: max(t, key=lambda r: r["images_per_second"]) for m, t in trials.items()}
    base = results.get("alone")
    if base:
        for mode, r in results.items():
            if mode != "alone":
                ratio = base["images_per_second"] / r["images_per_second"]
                print(
                    f"slowdown with {mode} reruns every {args.interval * 1000:.0f} ms: {ratio:.2f}x"
                )


if __name__ == "__main__":
    main()
