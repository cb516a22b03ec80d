"""How big is a run's HTML report, and how fast does Chromium open it offline? (issue #28)

Trains a short run on DATA (head only on the bundled ImageNet EfficientNet-Lite0, auto's
other choices, a time budget), or takes ``--run RUN``, writes its report (timed, with the
accuracy it shows) and opens it from disk in Chromium with the network off, a route aborting
and counting every request that is not a file. In the same invocation the naive reference is
the same report with the original image files embedded instead of thumbnails, and a blank page
gives the browser's floor. Targets: < 5 MB, opens in < 3 s, every section found, no request
leaves the machine.

    python benchmarks/bench_report.py CALTECH --budget 3m --json benchmarks/results/report_….json
    python benchmarks/bench_report.py --run runs/<id> --json OUT
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelkit.report import SECTION_IDS, collect, render  # noqa: E402
from modelkit.runs.folder import RunFolder  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
RUN_SETTINGS = ("arch", "image_size", "freeze_backbone", "epochs", "time_budget", "data_dir")
# resolves once the page has been laid out and painted after its load event
PAINTED = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
MIME = {".png": "image/png", ".gif": "image/gif", ".webp": "image/webp", ".bmp": "image/bmp"}


def train(data: str, runs: Path, args: argparse.Namespace) -> tuple[Path, float]:
    """A short real run through the command a person would type; (run folder, seconds)."""
    cmd = [sys.executable, "-m", "modelkit", "train", data, "--runs-dir", str(runs)]
    cmd += ["--recipe", "auto", "--time-budget", args.budget, "--device", "cpu"]
    cmd += ["--arch", args.arch, "--weights", args.weights, "--image-size", str(args.image_size)]
    cmd += ["--freeze-backbone", "true", "--head-epochs", "0"]  # head only: auto's own choice
    if args.epochs:
        cmd += ["--epochs", str(args.epochs)]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"training failed: {done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def original_uri(path: str) -> str:
    """The file itself as a data URI: what embedding images without thumbnails gives."""
    data = Path(path).read_bytes()
    mime = MIME.get(Path(path).suffix.lower(), "image/jpeg")
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def naive_page(facts, run: Path) -> str:
    """The same report with every picture the original file (the naive reference)."""
    cards = [
        dataclasses.replace(c, image=original_uri(c.path), cam=original_uri(c.path))
        if c.image
        else c
        for c in facts.samples
    ]
    data = facts.data
    if data is not None:
        first = {}
        for rows in (RunFolder(run).read_splits() or {}).values():
            for p, y in rows:
                first.setdefault(facts.classes[int(y)], p)
        examples = {k: original_uri(first[k]) for k in data.examples if k in first}
        data = dataclasses.replace(data, examples=examples)
    return render(dataclasses.replace(facts, samples=cards, data=data))


def open_offline(browser, path: Path, repeats: int) -> dict:
    """Median wall time from page.goto(file) to the first paint after the load event, the
    browser's own load time, the sections found by id, and the requests that tried to leave
    the machine."""
    walls, loads, outside, found = [], [], [], []
    for _ in range(repeats):
        context = browser.new_context()
        context.set_offline(True)

        def refuse(route, request):
            if not request.url.startswith(("file:", "data:")):
                outside.append(request.url)
                return route.abort()
            return route.continue_()

        context.route("**/*", refuse)
        page = context.new_page()
        start = time.perf_counter()
        page.goto(path.as_uri(), wait_until="load")
        page.evaluate(PAINTED)
        walls.append(time.perf_counter() - start)
        nav = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
        loads.append(float(nav) / 1000)
        found = [s for s in SECTION_IDS if page.locator(f"section#{s}").count() == 1]
        context.close()
    return {
        "bytes": path.stat().st_size,
        "mb": round(path.stat().st_size / 1e6, 3),
        "open_seconds_median": round(statistics.median(walls), 3),
        "open_seconds": [round(w, 3) for w in walls],
        "load_event_seconds_median": round(statistics.median(loads), 3),
        "sections_found": len(found),
        "requests_outside": outside,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", nargs="?", help="dataset folder to train a short run on")
    ap.add_argument("--run", help="report this run instead of training one")
    ap.add_argument("--budget", default="3m", help="training time budget (default 3m)")
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--weights", default="imagenet", help="starting weights (default imagenet)")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=0, help="fix the epochs (default: auto's)")
    ap.add_argument("--repeats", type=int, default=3, help="page opens per file")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if not (args.data or args.run):
        ap.error("give DATA to train on or --run RUN")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_s = None
        run = Path(args.run) if args.run else None
        if run is None:
            run, train_s = train(args.data, tmp / "runs", args)
        start = time.perf_counter()
        facts = collect(run, "cpu")
        page = render(facts)
        build_s = time.perf_counter() - start
        report = tmp / "report.html"
        report.write_text(page, encoding="utf-8")
        naive = tmp / "naive.html"
        naive.write_text(naive_page(facts, run), encoding="utf-8")
        blank = tmp / "blank.html"
        blank.write_text("<!DOCTYPE html><title>blank</title>", encoding="utf-8")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            sides = {
                name: open_offline(browser, path, args.repeats)
                for name, path in (("blank", blank), ("naive_originals", naive), ("report", report))
            }
            browser.close()
    ev = facts.evaluation
    result = {
        "args": vars(args),
        "run": run.name,
        "classes": len(facts.classes),
        "training_seconds": round(train_s, 1) if train_s else None,
        "training": dict(facts.training_env),  # how the run ended (a time budget, say)
        "run_settings": {k: facts.config.get(k) for k in RUN_SETTINGS},
        "accuracy": {
            "split": ev.split if ev else None,
            "accuracy": ev.accuracy if ev else None,
            "macro_f1": ev.macro["f1"] if ev else None,
            "images": sum(map(sum, ev.confusion_matrix)) if ev else 0,
        },
        "report_build_seconds": round(build_s, 2),
        "samples_with_grad_cam": sum(bool(c.cam) for c in facts.samples),
        **sides,
        "targets": {
            "under_5_mb": sides["report"]["bytes"] < 5e6,
            "opens_under_3_s": sides["report"]["open_seconds_median"] < 3,
            "every_section_found": sides["report"]["sections_found"] == len(SECTION_IDS),
            "no_request_left": not sides["report"]["requests_outside"],
        },
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
