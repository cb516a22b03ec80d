"""Build the benchmark suite's data sets into a local cache folder, from pinned public sources.

Each set of ``manifest.json`` becomes ``OUT/<set>/{train,val,test}/<class>/<image>``, the split
layout modelkit reads as given, plus ``OUT/<set>/suite_set.json``: where every image came from,
the seed, the counts and every source file left out with the reason. The split is drawn once,
seeded (``sampling.py``), so every recipe is judged on the same held-out images; sets are
subsampled and shrunk (``max_side``) so each trains in minutes on a 2-core CPU. Nothing built
here belongs in the repository.

    python benchmarks/suite/build.py --mirrors /work/.mirror            # every set
    python benchmarks/suite/build.py --sets rsscn7,dtd10 --out /tmp/suite
    python benchmarks/suite/build.py --clone-dir ~/.cache/modelkit-suite/_git   # git clone

Sources are read from a snapshot ``--mirrors/<owner>+<name>/repo`` when there is one, else
cloned from GitHub into ``--clone-dir`` when that is given; a set whose source is neither is
reported and skipped, and the others are still built.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sampling import draw_splits, longtail_counts  # noqa: E402
from sources import SourceError, open_source  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
MANIFEST = HERE / "manifest.json"
DEFAULT_OUT = Path("~/.cache/modelkit-suite").expanduser()
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
EXT_OF_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}
SET_FILE = "suite_set.json"


def load_manifest(path: Path = MANIFEST) -> dict:
    return json.loads(Path(path).read_text())


BUILD_KEYS = ("source", "class_dirs", "include_classes", "min_long_side", "take", "train_longtail")


def spec_hash(entry: dict, seed: int, max_side: int | None) -> str:
    """What a built folder was made from (the fields that change its images, not the prose):
    rebuilding is skipped while this is unchanged."""
    spec = {k: entry.get(k) for k in BUILD_KEYS}
    blob = json.dumps({"spec": spec, "seed": seed, "max_side": max_side}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def group_by_class(files: list[str], entry: dict) -> tuple[dict[str, list[str]], list[dict]]:
    """Class -> candidate files, from the class folders under each of ``class_dirs`` (source
    splits are pooled: the suite draws its own). Files that are not images by name are left
    out with a reason; a file without an extension stays a candidate (decoding decides)."""
    by_class: dict[str, list[str]] = {}
    skipped: list[dict] = []
    include = set(entry.get("include_classes") or [])
    for prefix in entry.get("class_dirs", [""]):
        head = f"{prefix.strip('/')}/" if prefix else ""
        for f in files:
            if not f.startswith(head):
                continue
            parts = f[len(head) :].split("/")
            if len(parts) < 2 or (include and parts[0] not in include):
                continue
            suffix = Path(f).suffix.lower()
            if suffix and suffix not in IMAGE_EXTS:
                skipped.append({"path": f, "reason": f"not an image file name ({suffix})"})
                continue
            by_class.setdefault(parts[0], []).append(f)
    return by_class, skipped


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header only, or None when it is not an image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any failure means "not an image we can use"
        return None


def filter_min_long_side(tree, by_class: dict, min_side: int, skipped: list[dict]) -> dict:
    """Keep the files whose longer side is at least ``min_side`` (a repository that mixes
    originals with small resized copies: the copies would make image size a class cue)."""
    kept: dict[str, list[str]] = {}
    paths = [p for files in by_class.values() for p in files]
    sizes = {p: image_size(data) for p, data in tree.read(paths)}
    for cls, files in by_class.items():
        for p in files:
            size = sizes[p]
            if size is not None and max(size) >= min_side:
                kept.setdefault(cls, []).append(p)
            else:
                why = "does not decode" if size is None else f"{size[0]}x{size[1]} < {min_side}"
                skipped.append({"path": p, "reason": f"min_long_side filter: {why}"})
    return kept


def write_image(data: bytes, dest_stem: Path, max_side: int | None) -> tuple[Path, tuple]:
    """Decode fully (a truncated file fails here, not in a training run), shrink to
    ``max_side`` on the long side when larger, write; unchanged images keep their bytes."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format or "PNG"
        im.load()
        ext = EXT_OF_FORMAT.get(fmt, ".png")
        if max_side is None or max(im.size) <= max_side:
            dest = dest_stem.with_suffix(ext)
            dest.write_bytes(data)
            return dest, im.size
        small = ImageOps.exif_transpose(im)  # the pixels a person sees, before EXIF is dropped
        small.thumbnail((max_side, max_side), Image.LANCZOS)
        if ext == ".jpg":
            dest = dest_stem.with_suffix(".jpg")
            small.convert("RGB" if small.mode not in ("L", "RGB") else small.mode).save(
                dest, quality=92
            )
        else:
            dest = dest_stem.with_suffix(".png")
            small.save(dest)
        return dest, small.size


def built_name(path: str, entry: dict) -> str:
    """A file name unique within its class folder: the source path minus the class folder
    (``train/cat/0001.jpg`` -> ``train_0001``), so pooled source splits do not collide."""
    for prefix in entry.get("class_dirs", [""]):
        head = f"{prefix.strip('/')}/" if prefix else ""
        if path.startswith(head):
            parts = path.split("/")
            cls_index = len(head.strip("/").split("/")) if head else 0
            rest = parts[:cls_index] + parts[cls_index + 1 :]
            return Path("_".join(rest)).stem.replace(" ", "_")
    return Path(path).stem


def build_set(entry: dict, out: Path, tree, seed: int, max_side: int | None) -> dict:
    """Build one set into ``out/<name>`` (via a temporary folder, renamed when complete) and
    return its record, which is also written to ``suite_set.json`` inside it. Every drawn file
    is decoded in full; one that fails is recorded and replaced by a spare of its class."""
    t0 = time.perf_counter()
    by_class, skipped = group_by_class(tree.files(), entry)
    if entry.get("min_long_side"):
        by_class = filter_min_long_side(tree, by_class, entry["min_long_side"], skipped)
    if not by_class:
        raise SourceError(f"{entry['name']}: no class folders under {tree.label}")
    tail = entry.get("train_longtail")
    counts = longtail_counts(list(by_class), tail["largest"], tail["ratio"]) if tail else None
    splits, spares = draw_splits(by_class, entry["take"], seed, counts)
    final = out / entry["name"]
    work = out / f".{entry['name']}.partial"
    shutil.rmtree(work, ignore_errors=True)
    files: dict[str, dict[str, list[list[str]]]] = {s: {} for s in splits}
    sides: list[int] = []
    pending = {p: (s, c) for s, per in splits.items() for c, ps in per.items() for p in ps}
    while pending:  # a file that does not decode is replaced by its class's next spare
        retry: dict[str, tuple[str, str]] = {}
        for path, data in tree.read(sorted(pending)):
            split, cls = pending[path]
            folder = work / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            try:
                dest, size = write_image(data, folder / built_name(path, entry), max_side)
            except Exception as exc:  # noqa: BLE001 - recorded, never silently dropped
                reason = "absent from the snapshot" if not data else f"does not decode: {exc}"
                skipped.append({"path": path, "reason": reason})
                if spares[cls]:
                    retry[spares[cls].pop(0)] = (split, cls)
                continue
            sides.append(max(size))
            files[split].setdefault(cls, []).append([dest.name, path])
        pending = retry
    record = {
        "name": entry["name"],
        "kinds": entry["kinds"],
        "source": entry["source"],
        "read_from": tree.label,
        "seed": seed,
        "max_side": max_side,
        "spec_hash": spec_hash(entry, seed, max_side),
        "classes": sorted(by_class),
        "counts": {s: sum(len(v) for v in per.values()) for s, per in files.items()},
        "per_class": {s: {c: len(v) for c, v in sorted(per.items())} for s, per in files.items()},
        "long_side_px": {"min": min(sides, default=0), "max": max(sides, default=0)},
        "skipped": skipped,
        "files": {s: {c: sorted(v) for c, v in sorted(per.items())} for s, per in files.items()},
        "build_s": round(time.perf_counter() - t0, 1),
    }
    (work / SET_FILE).write_text(json.dumps(record, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return record


def is_built(folder: Path, entry: dict, seed: int, max_side: int | None) -> bool:
    try:
        record = json.loads((folder / SET_FILE).read_text())
    except (OSError, ValueError):
        return False
    return record.get("spec_hash") == spec_hash(entry, seed, max_side)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    ap.add_argument("--mirrors", type=Path, help="folder of fetched snapshots (owner+name/repo)")
    ap.add_argument("--clone-dir", type=Path, help="git clone sources from GitHub into DIR")
    ap.add_argument("--sets", help="comma-separated set names (default: all)")
    ap.add_argument("--manifest", type=Path, default=MANIFEST)
    ap.add_argument("--force", action="store_true", help="rebuild sets already built")
    args = ap.parse_args(argv)
    manifest = load_manifest(args.manifest)
    seed = manifest.get("seed", 0)
    entries = manifest["sets"]
    if args.sets:
        names = args.sets.split(",")
        unknown = set(names) - {e["name"] for e in entries}
        if unknown:
            ap.error(f"unknown sets: {', '.join(sorted(unknown))}")
        entries = [e for e in entries if e["name"] in names]
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for entry in entries:
        max_side = entry.get("max_side", manifest.get("max_side"))
        folder = args.out / entry["name"]
        if not args.force and is_built(folder, entry, seed, max_side):
            print(f"{entry['name']}: already built in {folder}")
            continue
        try:
            tree = open_source(
                entry["source"], mirrors=args.mirrors, clones=args.clone_dir, repo_root=REPO_ROOT
            )
            rec = build_set(entry, args.out, tree, seed, max_side)
        except SourceError as exc:
            print(f"{entry['name']}: NOT BUILT: {exc}", file=sys.stderr)
            failed.append(entry["name"])
            continue
        print(
            f"{entry['name']}: {rec['counts']} in {len(rec['classes'])} classes, "
            f"{len(rec['skipped'])} skipped, {rec['build_s']} s -> {folder}"
        )
    if failed:
        print(f"not built: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
