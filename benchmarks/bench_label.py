"""Labelling: how many labels the tool saves, which map separates classes, and how fast it is.

Three parts, each writing its own JSON (``--out-dir``, default benchmarks/results/):

- ``efficiency`` (label_efficiency_cpu2.json): a labelled folder used as if unlabelled. A pool
  and a held-out test set are drawn per class; a simulated person labels pool images in batches
  of one per class, chosen either by the tool (``suggest``: half lowest margin without
  near-copies, half k-center over typical images; k-center over typical images before the head
  exists) or at random (the naive reference), and the head's test accuracy is recorded at 2, 5,
  10, 20 and 50 labels a class (in total: the number of classes times that), mean of ``--seeds``
  seeds: the tool's head (``pool_log_probs``: logistic and the labels spread over the pool; the
  test images are set aside) and, as ``*_plain_head``, the logistic head alone on the same
  picks. ``active_10_vs_random_20`` compares the same head; ``tool_10_vs_plain_random_20`` the
  tool against random labels with the logistic head. The tool's picks do not depend on the
  seed, so its curve is one run (sd 0); the rules and heads tried against it are in
  label_efficiency_variants_cpu2.json and label_efficiency_semi_cpu2.json.
- ``layout`` (label_layout_cpu2.json): PCA, t-SNE and UMAP (when installed) on each folder's
  features: 5-NN accuracy in 2-D (leave-one-out), trustworthiness (10 neighbours) and seconds.
- ``pseudo`` (label_pseudo_cpu2.json): at ``--pseudo-budgets`` labels a class picked by the
  tool (as in ``efficiency``), the labels are split as a run splits them and the pseudo-labels
  of a head on their training share are checked on their val share
  (``modelkit.labelling.pseudo.compare``, what the Label page and ``--pseudo-label`` do); the
  head's accuracy on the held-out test set with and without them, with what the check chose,
  and how many were used, for each ``--pseudo-targets`` bar, mean of ``--seeds`` seeds.
- ``speed`` (label_speed_cpu2.json): embedding + map of ``--speed-images`` images from an empty
  store (and the revisit), peak RSS, each with the default engine (OpenVINO on a CPU) and, up
  to ``--reference-images``, PyTorch eager as the naive reference; a suggestion round at 5,000
  images (``suggest`` alone, and the Labeller's whole round after one label), and "more like
  this" at 50,000.

Data sets are ``NAME=PATH[,classes=N][,min=M][,cap=C]``: a folder with train/ and val/ uses them
as pool and test; a class-folder set takes the first N classes (alphabetically) with at least M
images, at most C each, split 70/30 per class (seed 0). Features are embedded once into
``--cache-dir`` (never into the data folders).

    python benchmarks/bench_label.py --parts efficiency,layout,speed \\
        --set hymenoptera=../shared/datasets/hymenoptera_data \\
        --set caltech10=../shared/datasets/caltech101,classes=10,min=80,cap=100
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelkit.data.imageio import is_image_file  # noqa: E402
from modelkit.labelling import layout as maps  # noqa: E402
from modelkit.labelling import suggest as suggest_module  # noqa: E402
from modelkit.labelling.embed import embed_folder_images  # noqa: E402
from modelkit.labelling.suggest import (  # noqa: E402
    SET_ASIDE,
    head_log_probs,
    nearest,
    pool_log_probs,
    reduce,
    suggest,
)

SKIP = {"BACKGROUND_Google", "Faces_easy"}  # clutter, and a second copy of Faces
STRATEGY = ("EXPLORE_SHARE", "POOL_PER_ASK")  # how the tool asks: --strategy can change them
HEAD = ("SPREAD_PRIOR",)  # its head (guesses, margins): --head SPREAD_PRIOR=0 is the logistic one


def _images(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def load_set(spec: str) -> tuple[str, list[str], np.ndarray, list[str], np.ndarray, list[str]]:
    """(name, pool paths, pool labels, test paths, test labels, classes)."""
    name, rest = spec.split("=", 1)
    path, *opts = rest.split(",")
    o = dict(x.split("=") for x in opts)
    root = Path(path)
    if (root / "train").is_dir() and (root / "val").is_dir():
        classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
        parts = []
        for split in ("train", "val"):
            rows = [(p, c) for c, cls in enumerate(classes) for p in _images(root / split / cls)]
            parts.append(([p for p, _ in rows], np.array([c for _, c in rows])))
        return name, parts[0][0], parts[0][1], parts[1][0], parts[1][1], classes
    rng = np.random.default_rng(0)
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in SKIP)
    sized = [(c, _images(root / c)) for c in found]
    sized = [(c, ims) for c, ims in sized if len(ims) >= int(o.get("min", 0))]
    sized = sized[: int(o.get("classes", len(sized)))]
    pool, pool_y, test, test_y = [], [], [], []
    for k, (_, ims) in enumerate(sized):
        ims = list(rng.permutation(ims))[: int(o.get("cap", len(ims)))]
        cut = int(round(0.7 * len(ims)))
        pool += ims[:cut]
        pool_y += [k] * cut
        test += ims[cut:]
        test_y += [k] * (len(ims) - cut)
    return name, pool, np.array(pool_y), test, np.array(test_y), [c for c, _ in sized]


def embed(paths: list[str], cache: Path) -> np.ndarray:
    table = embed_folder_images(paths, cache, device="cpu")
    if table.errors:
        print(f"  {len(table.errors)} files skipped: {table.errors[:3]}", file=sys.stderr)
    keep = {p: i for i, p in enumerate(table.paths)}
    return table.features, np.array([p in keep for p in paths])


def accuracy(x_pool, labels, x_test, y_test, k, plain: bool = False) -> float:
    """Test accuracy of the suggestion head (``pool_log_probs``: the logistic head and the labels
    spread over the pool; test images are set aside, so they take the spread of their nearest
    pool images and spread nothing themselves), or of the logistic head alone (``plain``)."""
    if len(np.unique(labels[labels >= 0])) < 2:
        return float(np.mean(y_test == np.bincount(labels[labels >= 0]).argmax()))
    if plain:
        both = np.r_[x_pool[labels >= 0], x_test]
        y = np.r_[labels[labels >= 0], np.full(len(x_test), -1)]
        guess = head_log_probs(both, y, k)[len(y) - len(x_test) :].argmax(1)
    else:
        y = np.r_[labels, np.full(len(x_test), SET_ASIDE)]
        guess = pool_log_probs(np.r_[x_pool, x_test], y, k)[len(x_pool) :].argmax(1)
    return float(np.mean(guess == y_test))


def simulate(
    x_pool, y_pool, x_test, y_test, k, budgets, seed, active, keep: dict | None = None
) -> dict[int, float]:
    """Accuracy at each budget (labels in total) when the tool, or chance, picks the images;
    ``keep`` gets the labels given at each budget."""
    rng = np.random.default_rng(seed)
    labels = np.full(len(x_pool), -1)
    order = rng.permutation(len(x_pool))
    out, given = {}, 0
    for budget in sorted(budgets):
        budget = min(budget, len(x_pool))
        while given < budget:
            batch = min(k, budget - given)
            if active:
                r = suggest(
                    x_pool, labels, k, ask=batch, seed=seed, normalised=True, calibrate=False
                )
                picks = [a.row for a in r.asks]
            else:
                picks = list(order[given : given + batch])
            labels[picks] = y_pool[picks]
            given += len(picks)
        out[budget] = accuracy(x_pool, labels, x_test, y_test, k)
        if keep is not None:
            keep[budget] = labels.copy()
    return out


def gap(curves: dict, active: str, random: str) -> float | None:
    """Accuracy at 10 labels a class on curve ``active`` minus 20 a class on ``random``."""
    a10, r20 = (curves[c].get(n, {}).get("mean") for c, n in ((active, "10"), (random, "20")))
    return None if a10 is None or r20 is None else round(a10 - r20, 4)


def efficiency(sets, args, cache: Path) -> dict:
    result = {}
    per_class = [int(b) for b in args.budgets.split(",")]
    for spec in sets:
        name, pool, pool_y, test, test_y, classes = load_set(spec)
        print(
            f"{name}: {len(pool)} pool, {len(test)} test, {len(classes)} classes", file=sys.stderr
        )
        x, ok = embed(pool + test, cache / name)  # one store per set: a store keeps one folder
        xp, xt = x[: ok[: len(pool)].sum()], x[ok[: len(pool)].sum() :]
        okp, okt = ok[: len(pool)], ok[len(pool) :]
        xr = reduce(np.r_[xp, xt])  # the head's features, as the Labeller makes them
        xp, xt, yp, yt = xr[: len(xp)], xr[len(xp) :], pool_y[okp], test_y[okt]
        k = len(classes)
        budgets = {n: n * k for n in per_class if n * k <= len(xp)}
        curves: dict[str, dict] = {}
        started = time.perf_counter()
        for side in ("active", "random"):
            runs, given = [], []
            for s in range(args.seeds):
                given.append({})
                runs.append(simulate(xp, yp, xt, yt, k, list(budgets.values()), s,
                                     side == "active", given[-1]))  # fmt: skip
            plain = [{b: accuracy(xp, g[b], xt, yt, k, plain=True) for b in g} for g in given]
            for curve, accs_at in ((side, runs), (f"{side}_plain_head", plain)):
                for n, b in budgets.items():
                    accs = [r[b] for r in accs_at]
                    mean, sd = round(float(np.mean(accs)), 4), round(float(np.std(accs)), 4)
                    curves.setdefault(curve, {})[str(n)] = {"mean": mean, "sd": sd, "labels": b}

        result[name] = {
            "pool": len(xp), "test": len(xt), "classes": k, "curves": curves,
            # the asking rule's merit: the same head for the tool's picks and for random ones
            "active_10_vs_random_20": gap(curves, "active", "random"),
            "active_10_vs_random_20_plain_head": gap(
                curves, "active_plain_head", "random_plain_head"
            ),
            # what the tool gives against 20 random labels a class and the logistic head alone
            "tool_10_vs_plain_random_20": gap(curves, "active", "random_plain_head"),
            "seconds": round(time.perf_counter() - started, 1),
        }  # fmt: skip
        print(json.dumps({name: result[name]["curves"]}), file=sys.stderr)

    def met(key: str) -> str:
        gaps = [v[key] for v in result.values() if v[key] is not None]
        return f"{sum(g >= 0 for g in gaps)} of {len(gaps)}"

    strategy = {k: getattr(suggest_module, k) for k in STRATEGY}
    head = {k: getattr(suggest_module, k) for k in HEAD}
    return {"sets": result, "target_met_on": met("active_10_vs_random_20"),
            "target_met_on_against_plain_random": met("tool_10_vs_plain_random_20"),
            "seeds": args.seeds, "strategy": strategy, "head": head}  # fmt: skip


def _person_split(paths: list[str], given: np.ndarray, classes: list[str]) -> np.ndarray:
    """Rows of the labels ``given`` that a run holds out for validation: the per-class seeded
    draw of ``scan_dataset`` on the labelled files, with the run's default share and seed."""
    from modelkit.data.scan import _draw  # the draw itself: these files are not in one folder
    from modelkit.labelling.pseudo import SEED, TEST_RATIO, VAL_RATIO

    held = []
    for c, cls in enumerate(classes):
        rows = np.flatnonzero(given == c)
        out = _draw([paths[r] for r in rows], cls, SEED, VAL_RATIO, TEST_RATIO)
        held += [r for r in rows if paths[r] in set(out["val"]) | set(out["test"])]
    return np.array(sorted(held), dtype=np.int64)


def _check(xr, labels, held, y_held, test_rows, y_test, k, target) -> dict:
    """One pseudo-label check as the tool makes it, and the held-out test accuracy of the head
    without the pseudo-labels, with them, and with what the check chose."""
    from modelkit.labelling.pseudo import compare, head_accuracy

    train = np.flatnonzero(labels >= 0)
    without = head_accuracy(xr, train, labels[train], test_rows, y_test, k)
    started = time.perf_counter()
    c = compare(xr, labels, held, y_held, k, target, seed=0)
    seconds = time.perf_counter() - started
    both, ys = np.r_[train, c.rows], np.r_[labels[train], c.guess]
    with_ = head_accuracy(xr, both, ys, test_rows, y_test, k) if len(c.rows) else without
    return {
        "test_without": without, "test_with": with_,
        "test_chosen": with_ if c.helped else without,
        "val_without": c.val_without, "val_with": c.val_with, "pseudo_labels": len(c.rows),
        "used": len(c.rows) if c.helped else 0, "helped_on_val": c.helped,
        "bar_reached": c.reached, "threshold": round(c.threshold, 4), "val_images": len(held),
        "check_seconds": round(seconds, 3), "guess": c.guess, "rows": c.rows,
    }  # fmt: skip


MEANS = ("test_without", "test_with", "test_chosen", "val_without", "val_with", "pseudo_labels",
         "used", "pseudo_label_accuracy", "check_seconds")  # fmt: skip


def _summary(runs: list[dict], labels: int) -> dict:
    def mean(key: str) -> float | None:
        vals = [r[key] for r in runs if r[key] is not None]
        return round(float(np.mean(vals)), 4) if vals else None

    return {
        "labels": labels, "val_images_labelled": runs[0]["val_images"],
        **{key: mean(key) for key in MEANS},
        "helped_on_val_seeds": sum(r["helped_on_val"] for r in runs),
        "bar_reached_seeds": sum(r["bar_reached"] for r in runs), "seeds": runs,
    }  # fmt: skip


def pseudo(sets, args, cache: Path) -> dict:
    """The pseudo-label check on labels the tool asked for (see the module docstring)."""
    result = {}
    per_class = [int(b) for b in args.pseudo_budgets.split(",")]
    targets = [float(t) for t in args.pseudo_targets.split(",")]
    for spec in sets:
        name, pool, pool_y, test, test_y, classes = load_set(spec)
        x, ok = embed(pool + test, cache / name)
        okp, okt = ok[: len(pool)], ok[len(pool) :]
        xr = reduce(x)  # the head's features, as the Labeller makes them
        n_pool, k = int(okp.sum()), len(classes)
        yp, yt = pool_y[okp], test_y[okt]
        paths = [p for p, good in zip(pool, okp) if good]
        test_rows = np.arange(n_pool, len(xr))
        budgets = {n: n * k for n in per_class if n * k <= n_pool}
        started = time.perf_counter()
        runs: dict[tuple[int, float], list[dict]] = {}
        for seed in range(args.seeds):
            given_at: dict[int, np.ndarray] = {}
            simulate(xr[:n_pool], yp, xr[n_pool:], yt, k, list(budgets.values()), seed, True,
                     given_at)  # fmt: skip
            for n, b in budgets.items():
                held = _person_split(paths, given_at[b], classes)
                labels = np.r_[given_at[b], np.full(len(test_rows), SET_ASIDE)]
                labels[held] = SET_ASIDE  # the val share: no head trains on it
                for target in targets:
                    run = _check(xr, labels, held, yp[held], test_rows, yt, k, target)
                    rows, guess = run.pop("rows"), run.pop("guess")
                    right = float(np.mean(guess == yp[rows])) if len(rows) else None
                    runs.setdefault((n, target), []).append({**run, "pseudo_label_accuracy": right})
        table: dict[str, dict] = {}
        for (n, target), rs in sorted(runs.items()):
            table.setdefault(str(n), {})[str(target)] = _summary(rs, budgets[n])
        seconds = round(time.perf_counter() - started, 1)
        result[name] = {"pool": n_pool, "test": len(test_rows), "classes": k,
                        "per_class": table, "seconds": seconds}  # fmt: skip
        brief = {n: {t: {key: row[key] for key in MEANS} for t, row in by.items()}
                 for n, by in table.items()}  # fmt: skip
        print(json.dumps({name: brief}), file=sys.stderr)
    return {"sets": result, "seeds": args.seeds}


def layout(sets, args, cache: Path) -> dict:
    """Each map method on each set's features: separation in 2-D and seconds."""
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors

    result = {}
    for spec in sets:
        name, pool, pool_y, test, test_y, _ = load_set(spec)
        x, ok = embed(pool + test, cache / name)
        y = np.r_[pool_y, test_y][ok]
        rows = np.random.default_rng(0).permutation(len(x))[: args.layout_images]
        x, y = x[rows], y[rows]
        result[name] = {"images": len(x)}
        iterations = maps.TSNE_ITERATIONS
        # "tsne_1000": scikit-learn's default iteration count, the reference for TSNE_ITERATIONS
        for method, label, its in [(m, m, iterations) for m in maps.METHODS] + [
            ("tsne", "tsne_1000", 1000)
        ]:
            maps.TSNE_ITERATIONS = its
            started = time.perf_counter()
            try:
                coords = maps.project(x, method)
            except maps.LayoutError as exc:
                result[name][label] = {"skipped": str(exc)}
                continue
            finally:
                maps.TSNE_ITERATIONS = iterations
            seconds = time.perf_counter() - started
            idx = NearestNeighbors(n_neighbors=6).fit(coords).kneighbors(coords)[1][:, 1:]
            votes = np.array([np.bincount(y[i]).argmax() for i in idx])
            trust = trustworthiness(x, coords, n_neighbors=10)
            result[name][label] = {"knn5_accuracy_2d": round(float(np.mean(votes == y)), 4),
                                    "trustworthiness": round(float(trust), 4),
                                    "seconds": round(seconds, 2)}  # fmt: skip
        print(json.dumps({name: result[name]}), file=sys.stderr)
    return {"sets": result}


def _child_embed(paths_file: str, store: str, engine: str) -> None:
    """In a fresh process: embed the listed images into an empty store and draw the map, then
    the revisit; print seconds, peak RSS and the load average as JSON."""
    paths = Path(paths_file).read_text().splitlines()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    table = embed_folder_images(paths, store, device="cpu", engine=engine)
    embedded = time.perf_counter() - started
    coords = maps.cached_map(table.features, table.keys, store)
    first = time.perf_counter() - started
    again = time.perf_counter()
    table = embed_folder_images(paths, store, device="cpu", engine=engine)
    maps.cached_map(table.features, table.keys, store)
    revisit = time.perf_counter() - again
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": engine, "images": len(paths), "decoded": len(table.paths),
                      "map_seconds": round(first - embedded, 1),
                      "load_average_before_after": [round(load_before, 2),
                                                    round(os.getloadavg()[0], 2)],
                      "embed_seconds": round(embedded, 1), "embed_and_map_seconds": round(first, 1),
                      "revisit_seconds": round(revisit, 2), "peak_rss_mb": round(rss),
                      "map_points": len(coords)}))  # fmt: skip


def speed(sets, args, cache: Path) -> dict:
    """Embedding + map from an empty store in a fresh process (per --speed-images count), a
    suggestion round at 5,000 images, and "more like this" at 50,000."""
    import subprocess

    root = Path(args.speed_data)
    every = sorted(_images(root))
    rng = np.random.default_rng(0)
    out: dict = {"embed_and_map": []}
    for n in [int(v) for v in args.speed_images.split(",")]:
        chosen = sorted(rng.choice(every, size=min(n, len(every)), replace=False))
        # the naive reference (PyTorch eager) in the same invocation, where asked for
        engines = ["auto", "pytorch"] if n <= args.reference_images else ["auto"]
        runs = {}
        for engine in engines:
            with tempfile.TemporaryDirectory(prefix="bench-label-") as tmp:
                listing = Path(tmp) / "paths.txt"
                listing.write_text("\n".join(chosen))
                done = subprocess.run(
                    [sys.executable, __file__, "--child-embed", str(listing),
                     str(Path(tmp) / "s"), engine],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs[engine] = json.loads(done.stdout.strip().splitlines()[-1])
                out["embed_and_map"].append(runs[engine])
            print(json.dumps(runs[engine]), file=sys.stderr)
        if "pytorch" in runs:
            out["embed_and_map"][-1]["speedup_of_auto"] = round(
                runs["pytorch"]["embed_and_map_seconds"] / runs["auto"]["embed_and_map_seconds"], 2
            )
    paths = sorted(rng.choice(every, size=min(5000, len(every)), replace=False))
    x_full, ok = embed(paths, cache / "speed5000")
    names = sorted({Path(p).parent.name for p in paths})
    y = np.array([names.index(Path(p).parent.name) for p in paths])[ok]
    started = time.perf_counter()
    x = reduce(x_full)
    reduce_s = time.perf_counter() - started
    labels = np.full(len(x), -1)
    for c in range(len(names)):  # 5 labels a class, as after a few minutes of labelling
        labels[np.flatnonzero(y == c)[:5]] = c
    first = suggest(x, labels, len(names), ask=20, normalised=True)
    labels[np.flatnonzero(labels < 0)[0]] = y[np.flatnonzero(labels < 0)[0]]  # one new label
    load_before = os.getloadavg()[0]
    second = suggest(x, labels, len(names), ask=20, normalised=True)
    guess_ok = float(np.mean(second.guess[labels < 0] == y[labels < 0]))
    out["suggest_round"] = {
        "images": len(x), "classes": len(names), "labels": int((labels >= 0).sum()),
        "reduce_seconds_once": round(reduce_s, 2), "first_round_seconds": round(first.seconds, 2),
        "round_after_a_new_label_seconds": round(second.seconds, 2),
        "head_accuracy_on_unlabelled": round(guess_ok, 4),
        "accept_count": int(len(second.accept_rows(labels))),
        "accept_accuracy": round(float(np.mean(second.guess[second.accept_rows(labels)]
                                 == y[second.accept_rows(labels)])), 4)
        if len(second.accept_rows(labels)) else None,
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }  # fmt: skip
    out["labeller_round"] = labeller_round(paths, ok, cache / "speed5000")
    big = np.random.default_rng(0).normal(size=(50_000, 128)).astype(np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    started = time.perf_counter()
    for q in range(20):
        rows, _ = nearest(big, q, 12, normalised=True)
    out["more_like_this_50k"] = {
        "dims": 128,
        "ms_per_query": round((time.perf_counter() - started) / 20 * 1000, 2),
    }
    print(json.dumps(out), file=sys.stderr)
    return out


def labeller_round(paths: list[str], ok: np.ndarray, store: Path) -> dict:
    """What a person waits for after labelling one image in a folder of ``paths``: the
    Labeller's round (folder scan, store lookup, head, suggestions), 5 labels a class given.
    The folder holds hard links to the photos (same file identity) and a copy of their store,
    so nothing is embedded again; where links cannot be made it is skipped."""
    import shutil

    from modelkit.labelling.folder import CACHE_NAME
    from modelkit.labelling.session import Labeller

    with tempfile.TemporaryDirectory(prefix="bench-label-folder-") as tmp:
        root = Path(tmp)
        given: dict[str, int] = {}
        truth = {}
        try:
            for p in (p for p, good in zip(paths, ok) if good):
                cls = Path(p).parent.name
                given[cls] = given.get(cls, 0) + 1
                dest = root / (cls if given[cls] <= 5 else "unlabelled")
                dest.mkdir(exist_ok=True)
                os.link(p, dest / f"{cls}-{Path(p).name}")
                truth[f"{cls}-{Path(p).name}"] = cls
        except OSError as exc:
            return {"skipped": f"cannot link the photos: {exc}"}
        shutil.copytree(store, root / CACHE_NAME, ignore=shutil.ignore_patterns(".lock"))
        lab = Labeller(root, "pretrained", "cpu")
        started = time.perf_counter()
        first = lab.suggest(20)
        first_s = time.perf_counter() - started
        path = first.asks[0]["path"]
        lab.assign([path], truth[Path(path).name])
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        after = lab.suggest(20)
        return {
            "images": len(lab.table().paths), "embedded_again": lab.table().embedded,
            "first_round_seconds": round(first_s, 2),
            "round_after_a_new_label_seconds": round(time.perf_counter() - started, 2),
            "of_which_suggest_seconds": round(after.seconds, 2),
            "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], dest="sets", metavar="NAME=PATH,...")
    ap.add_argument("--parts", default="efficiency,layout,speed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", default="2,5,10,20,50", help="labels a class")
    ap.add_argument("--cache-dir", default=os.path.join(tempfile.gettempdir(), "bench-label"))
    ap.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--suffix", default="cpu2", help="end of the JSON file names")
    ap.add_argument(
        "--strategy",
        default="",
        metavar="NAME=VALUE,...",
        help="the asking strategy to try, e.g. POOL_PER_ASK=4 (recorded in the JSON)",
    )
    ap.add_argument(
        "--head",
        default="",
        metavar="NAME=VALUE,...",
        help="the head to try, e.g. SPREAD_PRIOR=0 (recorded in the JSON)",
    )
    ap.add_argument("--pseudo-budgets", default="5,10", help="labels a class (pseudo)")
    ap.add_argument("--pseudo-targets", default="0.95", help="accept bars to try (pseudo)")
    ap.add_argument("--layout-images", type=int, default=1000, help="per set, at most")
    ap.add_argument("--speed-data", default="../shared/datasets/caltech101")
    ap.add_argument("--speed-images", default="1000", help="counts to embed and map afresh")
    ap.add_argument(
        "--reference-images",
        type=int,
        default=1000,
        help="also embed with PyTorch eager (the naive reference) up to this count",
    )
    ap.add_argument("--child-embed", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_embed:
        return _child_embed(*args.child_embed)
    for flag, names, given in (
        ("--strategy", STRATEGY, args.strategy),
        ("--head", HEAD, args.head),
    ):
        for item in filter(None, given.split(",")):
            key, value = item.split("=")
            if key not in names:
                ap.error(f"{flag}: {key} is not one of {', '.join(names)}")
            setattr(suggest_module, key, type(getattr(suggest_module, key))(value))
    cache = Path(args.cache_dir)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = {"efficiency": efficiency, "layout": layout, "speed": speed, "pseudo": pseudo}
    for part in args.parts.split(","):
        result = parts[part](args.sets, args, cache)
        result.update(args=vars(args), cpu_threads=os.cpu_count(), load_average=os.getloadavg())
        path = out / f"label_{part}_{args.suffix}.json"
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
