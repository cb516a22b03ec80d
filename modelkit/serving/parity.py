"""Parity of an exported model with the PyTorch one it came from: the table every export carries.

Quantisation can lose accuracy without a sign (a serving system sees confident answers either
way), so an export is run next to PyTorch on the run's validation images and judged by what a
user would check: does it pick the same class (top-1 agreement), is it as accurate overall and
for each class, how far apart are the calibrated probabilities, how large is the file, and is
it faster on this CPU (latency at batch 1, throughput at batch 32). The table is stored in the
model card (``exports[fmt]["parity"]``) and printed with a refused export.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from modelkit.serving.export_inputs import LabelledImages, batches, random_inputs

# A model under test: a float32 N x 3 x S x S batch in, raw logits (N x classes) out.
Runner = Callable[[np.ndarray], np.ndarray]

MAX_IMAGES = 2000  # validation images compared at most (spread over the split)
LATENCY_SECONDS = 1.0  # time spent measuring each figure, after one warm-up call
THROUGHPUT_BATCH = 32


def torch_runner(model: torch.nn.Module) -> Runner:
    """The eval-mode PyTorch model as a Runner: the reference every export is compared with."""

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).float().numpy()

    return run


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def speed(
    runners: dict[str, Runner], images: np.ndarray, seconds: float = LATENCY_SECONDS
) -> dict[str, dict[str, float]]:
    """Median latency of one image and throughput of a batch of THROUGHPUT_BATCH for each
    runner, measured for about ``seconds`` each after a warm-up call (first calls allocate and
    pick kernels). The runners take turns call by call, so a load that comes and goes on a
    shared machine slows each of them alike instead of whichever was being timed then."""
    one = np.ascontiguousarray(images[:1])
    reps = -(-THROUGHPUT_BATCH // len(images))
    batch = np.ascontiguousarray(np.concatenate([images] * reps)[:THROUGHPUT_BATCH])
    figures: dict[str, dict[str, float]] = {name: {} for name in runners}
    for key, x in (("latency_ms_batch1", one), ("throughput_batch32", batch)):
        times: dict[str, list[float]] = {name: [] for name in runners}
        for run in runners.values():
            run(x)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds * len(runners) or not all(times.values()):
            for name, run in runners.items():
                t0 = time.perf_counter()
                run(x)
                times[name].append(time.perf_counter() - t0)
            if len(times[name]) >= 200:
                break
        for name, t in times.items():
            median = statistics.median(t)
            figures[name][key] = median * 1000 if key.startswith("latency") else len(x) / median
    return figures


def compare(
    reference: Runner,
    candidate: Runner,
    payload: dict[str, Any],
    images: LabelledImages,
    temperature: float = 1.0,
) -> tuple[dict[str, Any], np.ndarray]:
    """Agreement and accuracy of ``candidate`` against ``reference`` on ``images`` (random
    pixels, agreement only, when none can be read), and a batch of the inputs for timing."""
    classes = list(payload["classes"])
    ref_logits, cand_logits, labels, sample = [], [], [], None
    for x, y in batches(payload, images):
        arr = x.numpy()
        sample = arr if sample is None else sample
        ref_logits.append(reference(arr))
        cand_logits.append(candidate(arr))
        labels.append(y)
    source = f"{sum(map(len, labels))} {images.split} images"
    if sample is None:  # no image of the split could be read: random pixels, no accuracy
        arr = random_inputs(payload, 16).numpy()
        sample, ref_logits, cand_logits = arr, [reference(arr)], [candidate(arr)]
        source = "16 random images"
    ref, cand = np.concatenate(ref_logits), np.concatenate(cand_logits)
    ref_top, cand_top = ref.argmax(1), cand.argmax(1)
    summary: dict[str, Any] = {
        "verified_on": source,
        "images": len(ref),
        "top1_agreement": float((ref_top == cand_top).mean()),
        "max_probability_diff": float(
            np.abs(_softmax(ref, temperature) - _softmax(cand, temperature)).max()
        ),
        "max_abs_logit_diff": float(np.abs(ref - cand).max()),
        "accuracy_pytorch": None,
        "accuracy_export": None,
        "accuracy_change": None,
    }
    per_class = []
    if labels:
        y = np.concatenate(labels)
        acc_ref, acc_cand = float((ref_top == y).mean()), float((cand_top == y).mean())
        summary.update(
            accuracy_pytorch=acc_ref, accuracy_export=acc_cand, accuracy_change=acc_cand - acc_ref
        )
        for index, name in enumerate(classes):
            mask = y == index
            if mask.any():
                a = float((ref_top[mask] == index).mean())
                b = float((cand_top[mask] == index).mean())
                per_class.append(
                    {
                        "class": name,
                        "images": int(mask.sum()),
                        "accuracy_pytorch": a,
                        "accuracy_export": b,
                        "change": b - a,
                    }
                )
    return {"summary": summary, "per_class": per_class}, sample[:THROUGHPUT_BATCH]


def measure(
    reference: Runner,
    candidate: Runner,
    payload: dict[str, Any],
    images: LabelledImages,
    file_bytes: int,
    temperature: float = 1.0,
    timing: bool = True,
) -> dict[str, Any]:
    """The parity table of ``candidate``: ``compare`` plus file size and both models' speed."""
    parity, sample = compare(reference, candidate, payload, images, temperature)
    summary = parity["summary"]
    summary["file_bytes"] = int(file_bytes)
    if timing:
        figures = speed({"export": candidate, "pytorch": reference}, sample)
        mine, ref = figures["export"], figures["pytorch"]
        summary.update(mine)
        summary["pytorch_latency_ms_batch1"] = ref["latency_ms_batch1"]
        summary["pytorch_throughput_batch32"] = ref["throughput_batch32"]
        summary["speedup_batch1"] = ref["latency_ms_batch1"] / mine["latency_ms_batch1"]
        summary["speedup_batch32"] = mine["throughput_batch32"] / ref["throughput_batch32"]
        summary["threads"] = torch.get_num_threads()
        # a shared machine's load slows PyTorch's thread pool far more than the exports' own
        summary["load_average"] = round(os.getloadavg()[0], 2)
    return parity


def accuracy_drop_points(parity: dict[str, Any]) -> float:
    """How many percentage points of accuracy the export lost (0 when it gained or when the
    run had no labelled images to tell)."""
    change = parity["summary"].get("accuracy_change")
    return max(0.0, -100.0 * change) if change is not None else 0.0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_table(fmt: str, parity: dict[str, Any], worst: int = 5) -> str:
    """The parity table as plain text (for the command line and a refused export's message)."""
    s = parity["summary"]
    change = s.get("accuracy_change")
    lines = [
        f"{fmt} against PyTorch on {s['verified_on']}:",
        f"  top-1 agreement        {_pct(s['top1_agreement'])}",
        f"  accuracy               {_pct(s['accuracy_pytorch'])} -> {_pct(s['accuracy_export'])}"
        + ("" if change is None else f" ({100 * change:+.1f} points)"),
        f"  max probability diff   {s['max_probability_diff']:.4f}",
        f"  file size              {s.get('file_bytes', 0) / 1e6:.1f} MB",
    ]
    if "latency_ms_batch1" in s:
        lines += [
            f"  latency, batch 1       {s['latency_ms_batch1']:.1f} ms "
            f"(PyTorch {s['pytorch_latency_ms_batch1']:.1f} ms, x{s['speedup_batch1']:.2f})",
            f"  throughput, batch 32   {s['throughput_batch32']:.0f} img/s "
            f"(PyTorch {s['pytorch_throughput_batch32']:.0f} img/s, x{s['speedup_batch32']:.2f})",
        ]
    changed = sorted(parity["per_class"], key=lambda r: r["change"])[:worst]
    changed = [r for r in changed if r["change"] < 0]
    if changed:
        lines.append("  classes that lost most:")
        lines += [
            f"    {r['class']}: {_pct(r['accuracy_pytorch'])} -> {_pct(r['accuracy_export'])} "
            f"({r['images']} images)"
            for r in changed
        ]
    return "\n".join(lines)
