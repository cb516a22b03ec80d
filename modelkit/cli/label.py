"""``label``: label a folder of photos from the terminal, asking only for the labels that matter.

One invocation does, in this order: ``--undo``, ``--assign``/``--skip``, ``--accept-above``,
then prints the state, ``--suggest`` (the next images to label and why), ``--pseudo-label``
(whether the sure ones help on val, and the list of files to train from), ``--like`` and writes
``--map``. Every move goes through the dataset's journal (``modelkit clean --journal`` lists it).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from modelkit.cli.common import UsageError, echo


def _pairs(items: list[str], data: str) -> list[tuple[str, str]]:
    """``FILE=CLASS`` items as (absolute path, class); a FILE that is not there relative to the
    working folder is looked for inside DATA."""
    out = []
    for item in items:
        path, eq, cls = item.rpartition("=")
        if not eq or not path or not cls:
            raise UsageError(f"--assign {item!r}: expected FILE=CLASS")
        out.append((_path(path, data), cls))
    return out


def _path(path: str, data: str) -> str:
    return os.path.abspath(path if os.path.exists(path) else os.path.join(data, path))


def _rel(path: str, root: str) -> str:
    from modelkit.labelling.folder import shown

    return shown(os.path.relpath(path, root) if path.startswith(root) else path)


def _report(outcome, verb: str, root: str, out: dict, key: str) -> None:
    out.setdefault(key, []).extend(e.to_dict() for e in outcome.done)
    out.setdefault("failed", []).extend({"path": p, "why": w} for p, w in outcome.failed)
    if out["_text"]:
        for e in outcome.done:
            echo(f"{verb} #{e.id}: {_rel(os.path.join(root, e.src), root)} -> {e.dst}")
        for p, why in outcome.failed:
            echo(f"not {verb}: {_rel(p, root)}: {why}", file=sys.stderr)
        for p in getattr(outcome, "offers", []):
            echo(f"  near-duplicate, same label? {_rel(p, root)}")


def _state(lab, out: dict) -> None:
    f = lab.folder
    table = lab.table()
    out.update(
        root=f.root, classes=f.counts(), unlabelled=len(f.unlabelled), skipped=len(f.skipped),
        unreadable=[{"path": p, "why": w} for p, w in table.errors],
        refused=[{"path": p, "why": w} for p, w in f.refused], embedded_now=table.embedded,
    )  # fmt: skip
    if not out["_text"]:
        return
    counts = ", ".join(f"{c} {n}" for c, n in f.counts().items()) or "none yet"
    echo(f"{f.root}: {len(f.unlabelled)} unlabelled, {len(f.skipped)} not sure; classes: "
          f"{counts}")  # fmt: skip
    for p, why in table.errors + f.refused:
        echo(f"skipped {_rel(p, f.root)}: {why}", file=sys.stderr)


def _suggest(lab, args, out: dict, accept: bool) -> None:
    s = lab.suggest(args.suggest or 0, args.accept_above or 0.95, args.seed)
    if accept and not args.dry_run:
        done = lab.accept(s, args.copy)
        _report(done, "labelled", lab.root, out, "accepted")
        s = lab.suggest(args.suggest or 0, args.accept_above, args.seed)
    out["suggestions"] = s.to_dict()
    if not out["_text"]:
        return
    root = lab.root
    if accept:
        verb = "would label" if args.dry_run else "left to label"
        echo(f"accept bar for {s.target:.0%}: calibrated confidence >= {s.threshold:.3f}; "
              f"{verb} {len(s.accept)}" + ("" if s.reached else " (the target is not reached "
              "on the labels given yet: label more)"))  # fmt: skip
    if s.ready:
        est = f"{s.estimated_accuracy:.3f}" if s.estimated_accuracy is not None else "?"
        echo(f"head: estimated accuracy {est} (out of fold on {s.labelled} labels), "
              f"{len(s.accept)} unlabelled above the {s.target:.0%} bar "
              f"(confidence >= {s.threshold:.3f})")  # fmt: skip
    if args.suggest:
        echo(f"next {len(s.asks)} to label, most useful first:")
        for i, a in enumerate(s.asks, 1):
            guess = f"guess {a['guess']} {a['confidence']:.2f}; " if a["guess"] else ""
            echo(f"{i:>4}  {_rel(a['path'], root)}  ({guess}{a['reason']})")


def _pseudo(lab, target: float, out: dict) -> bool:
    """Pseudo-labels, whether they help on val, and the training list; False when the labels
    cannot train yet (said why)."""
    from modelkit.labelling.handoff import training_problems
    from modelkit.labelling.pseudo import pseudo_labels, write_training_list

    problems = training_problems(lab.folder, from_list=True)
    result = pseudo_labels(lab, target)
    out["pseudo_label"] = report = result.to_dict()
    report["problems"] = problems
    if not problems:
        report["list"] = path = str(write_training_list(result))
        report["command"] = f"modelkit train {shlex.quote(path)} --recipe auto"
    if not out["_text"]:
        return not problems
    if result.pseudo:
        per = ", ".join(f"{c} {n}" for c, n in result.per_class().items() if n)
        echo(f"pseudo-labels: {len(result.pseudo)} unlabelled images at or above the calibrated "
             f"confidence {result.threshold:.3f} for {target:.0%} ({per})")  # fmt: skip
    echo(result.sentence())
    for problem in problems:
        echo(f"not written: {problem}", file=sys.stderr)
    if problems:
        return False
    sizes = {s: len(v) for s, v in result.splits.items()}
    used = f" + {len(result.used)} pseudo-labelled" if result.used else ""
    rest = ", ".join(f"{s} {n}" for s, n in sizes.items() if s != "train") or "no val"
    echo(f"training list: {report['list']} (train {sizes.get('train', 0)} labelled by you{used}; "
         f"{rest}, labelled by you)")  # fmt: skip
    echo(f"train on it: {report['command']}")
    return True


def _progress(stage: str, fraction: float) -> None:
    print(f"\r{stage:<10} {fraction:4.0%}", end="", file=sys.stderr, flush=True)


def _label(args: argparse.Namespace) -> int:
    from modelkit.labelling.session import Labeller

    if args.accept_above is not None and not 0 < args.accept_above < 1:
        raise UsageError(f"--accept-above must be between 0 and 1, got {args.accept_above}")
    if args.suggest is not None and args.suggest < 0:
        raise UsageError(f"--suggest must be 0 or more, got {args.suggest}")
    if args.pseudo_label is not None and not 0 < args.pseudo_label < 1:
        raise UsageError(f"--pseudo-label must be between 0 and 1, got {args.pseudo_label}")
    pairs = _pairs(args.assign, args.data)
    lab = Labeller(args.data, args.features, args.device)
    out: dict = {"_text": not args.json}
    if args.undo is not None:
        entry = lab.undo(None if args.undo == 0 else args.undo)
        out["undone"] = entry.to_dict() if entry else None
        if out["_text"]:
            echo(f"undid #{entry.undoes}: {entry.src} -> {entry.dst}" if entry else
                  "no labelling change to undo")  # fmt: skip
    by_class: dict[str, list[str]] = {}
    for path, cls in pairs:
        by_class.setdefault(cls, []).append(path)
    for cls, paths in by_class.items():
        _report(lab.assign(paths, cls, args.copy), "labelled", lab.root, out, "labelled")
    if args.skip:
        skipped = lab.skip([_path(p, args.data) for p in args.skip])
        _report(skipped, "skipped", lab.root, out, "skipped_now")
    if out["_text"] and lab.table(_progress).embedded:
        echo(file=sys.stderr)  # end the progress line
    _state(lab, out)
    if args.suggest is not None or args.accept_above is not None:
        _suggest(lab, args, out, args.accept_above is not None)
    ok = args.pseudo_label is None or _pseudo(lab, args.pseudo_label, out)
    if args.like:
        like = lab.like(_path(args.like, args.data), args.suggest or 12)
        out["like"] = [{"path": p, "similarity": round(s, 4)} for p, s in like]
        for p, s in like if out["_text"] else []:
            echo(f"  {s:.3f}  {_rel(p, lab.root)}")
    if args.map:
        from modelkit.labelling.html_map import write_map

        write_map(lab, args.map, args.map_method)
        out["map"] = os.path.abspath(args.map)
        if out["_text"]:
            echo(f"map: {out['map']}")
    if args.json:
        del out["_text"]
        print(json.dumps(out, indent=2, default=str))
    return 1 if out.get("failed") or not ok else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from modelkit.labelling.layout import DEFAULT, METHODS

    p = sub.add_parser(
        "label",
        help="label a folder of photos; the model asks for the labels it needs",
        description="DATA holds unlabelled photos (loose, or in DATA/unlabelled/) and class "
        "folders made so far. Each label moves (or with --copy copies) the file into "
        "DATA/<class>/, journalled in DATA/.modelkit-journal.jsonl; --undo reverses the last.",
    )
    p.add_argument("data", help="the folder to label")
    p.add_argument("--suggest", type=int, metavar="N", help="print the next N images to label")
    p.add_argument("--assign", nargs="+", default=[], metavar="FILE=CLASS", help="label files")
    p.add_argument("--skip", nargs="+", default=[], metavar="FILE", help="put in the not-sure bin")
    p.add_argument("--copy", action="store_true", help="copy into the class folder, do not move")
    p.add_argument(
        "--accept-above",
        type=float,
        metavar="P",
        help="label every image whose calibrated confidence reaches the bar at which held-out "
        "labels were right P of the time (e.g. 0.95)",
    )
    p.add_argument("--dry-run", action="store_true", help="with --accept-above: only count")
    p.add_argument("--undo", type=int, nargs="?", const=0, metavar="N",
                   help="undo the last labelling change (or change #N)")  # fmt: skip
    p.add_argument(
        "--pseudo-label", type=float, nargs="?", const=0.95, metavar="P",
        help="check on your val labels whether the images above the calibrated bar for P "
        "(default 0.95) raise accuracy, and write the list of files to train from (your labels, "
        "plus those images only if they helped; nothing is moved)",
    )  # fmt: skip
    p.add_argument("--like", metavar="FILE", help="list the images most like FILE")
    p.add_argument("--map", metavar="OUT.html", help="write the map as one offline HTML file")
    p.add_argument("--map-method", choices=METHODS, default=DEFAULT, help="projection of the map")
    p.add_argument("--features", choices=("pretrained", "pixels"), default="pretrained",
                   help="the bundled backbone, or colour thumbnails (no model)")  # fmt: skip
    p.add_argument("--device", default="auto", help="where to embed (auto, cpu, cuda)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_label)
