"""The pre-training check: decode every file once and say, per file, what is wrong.

Training on a folder with corrupt files, empty classes or the same photo in train and val fails
late or, worse, reports a validation score that is too good; this report catches those up front.
"""

from __future__ import annotations

import hashlib
import io
import os
import statistics
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field

from PIL import Image

from modelkit.data.imageio import ImageLoadError, load_image
from modelkit.data.scan import DatasetIndex, Sample
from modelkit.names import printable
from modelkit.paths import MAX_IMAGE_FILE_BYTES, UntrustedFileError, read_untrusted

EXIF_ORIENTATION = 0x0112
# (content hash, (width, height), reason unreadable) for one file.
CheckResult = tuple[str | None, tuple[int, int] | None, str | None]
# Decode at reduced JPEG scale: the check only needs to know the file decodes, not every pixel.
CHECK_MIN_SIZE = 64


@dataclass(frozen=True)
class Issue:
    """One thing to fix: a short ``problem`` for a table cell beside its file, class and split,
    and the whole ``sentence`` for a terminal."""

    problem: str
    sentence: str
    file: str = ""
    cls: str = ""
    split: str = ""

    def row(self) -> dict[str, str]:
        return {"file": self.file, "class": self.cls, "split": self.split, "problem": self.problem}


@dataclass
class DatasetReport:
    root: str
    layout: str
    classes: list[str]
    counts: dict[str, dict[str, int]]  # {split: {class: n}} of readable images
    unreadable: list[dict] = field(default_factory=list)  # [{"path", "reason"}]
    ignored: list[str] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    too_small: list[str] = field(default_factory=list)
    # [{"paths", "classes", "splits", "cross_class", "cross_split"}]; classes/splits parallel paths
    duplicates: list[dict] = field(default_factory=list)
    size_stats: dict = field(default_factory=dict)
    unreadable_dirs: list[str] = field(default_factory=list)
    outside_roots: list[str] = field(default_factory=list)  # links leading out of the roots

    def to_dict(self) -> dict:
        d = asdict(self)
        d["problems"] = self.problems
        return d

    @property
    def issues(self) -> list[Issue]:
        """What to fix before training in the files, folders and classes, one each: the single
        list that a problem count, a problems table and the sentences all come from, so they
        cannot disagree. Identical files are not here: ``leaks`` holds those that matter."""
        out: list[Issue] = []
        for item in self.unreadable:
            rel = self._rel(item["path"])
            out.append(Issue(item["reason"], f"Cannot use {rel}: {item['reason']}", rel))
        for folder in self.unreadable_dirs:
            path, _, reason = folder.partition(": ")
            problem = f"cannot read folder ({reason or 'unknown reason'})"
            out.append(Issue(problem, f"Cannot read folder {self._rel(folder)}", self._rel(path)))
        for path in self.outside_roots:
            rel = self._rel(path)
            why = "links outside the folders this app may open"
            out.append(Issue(f"skipped: {why}", f"Skipped {rel}: it {why}", rel))
        flagged = set(self.empty_classes) | set(self.too_small)
        for entry in self.empty_classes:
            cls, _, split = entry.partition(" (")
            flagged.add(cls)
            sentence = f"No images for class {entry}"
            out.append(Issue("no images", sentence, cls=cls, split=split.rstrip(")")))
        for cls in self.too_small:
            n = sum(c.get(cls, 0) for c in self.counts.values())
            sentence = (
                f"Class {cls} has only {n} image(s): too few to put one in each of "
                f"{', '.join(self.counts)}"
            )
            problem = f"only {n} image(s): too few to put one in every split"
            out.append(Issue(problem, sentence, cls=cls))
        for split, row in self.counts.items():
            for cls, n in row.items():
                if n == 0 and cls not in flagged and f"{cls} ({split})" not in flagged:
                    sentence = f"Class {cls} has no readable images in {split}"
                    out.append(Issue("no readable images", sentence, cls=cls, split=split))
        return out

    @property
    def leaks(self) -> list[dict]:
        """Groups of identical files that span classes (a label conflict) or splits (a
        validation score that is too good); copies within one class and split only weigh an
        image twice, so they are not counted here."""
        return [g for g in self.duplicates if g["cross_class"] or g["cross_split"]]

    @property
    def problems(self) -> list[str]:
        """One sentence per thing a person should fix before training, naming the file: the
        issues, then the leaking groups of identical files."""
        out = [issue.sentence for issue in self.issues]
        for group in self.leaks:
            where = ", ".join(
                f"{self._rel(p)} ({c}, {s})"
                for p, c, s in zip(group["paths"], group["classes"], group["splits"], strict=True)
            )
            if group["cross_class"]:
                out.append(f"Identical files with different labels: {where}")
            else:
                out.append(f"Identical files in more than one split (leaks evaluation): {where}")
        return out

    def _rel(self, path: str) -> str:
        try:
            rel = os.path.relpath(path, self.root)
        except ValueError:  # different drive on Windows
            rel = path
        return path if rel.startswith("..") else rel


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height as displayed (EXIF rotation applied), read from the header only."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        try:
            orientation = im.getexif().get(EXIF_ORIENTATION)
        except Exception:  # noqa: BLE001 - broken EXIF: keep the size as stored
            orientation = None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _check_file(path: str) -> CheckResult:
    """Hash, size and reason-if-unreadable of one file; never raises."""
    try:  # the scan already kept files outside the allowed roots out; size and kind here
        data = read_untrusted(path, MAX_IMAGE_FILE_BYTES, roots=None)
    except OSError as exc:
        reason = {FileNotFoundError: "file not found", PermissionError: "permission denied"}.get(
            type(exc), exc.strerror if isinstance(exc, UntrustedFileError) else None
        ) or f"cannot read: {exc.strerror or exc}"
        return None, None, reason
    if not data:
        return None, None, "empty file (0 bytes)"
    buf = io.BytesIO(data)
    buf.name = path
    try:
        load_image(buf, min_size=CHECK_MIN_SIZE)
        size = _image_size(data)
    except ImageLoadError as exc:
        return None, None, exc.reason
    except Exception as exc:  # noqa: BLE001 - one odd file must not stop the check
        return None, None, f"cannot decode: {type(exc).__name__}: {exc}"
    return hashlib.blake2b(data, digest_size=20).hexdigest(), size, None


def _stats(values: list[int]) -> dict:
    if not values:
        return {"min": None, "max": None, "mean": None, "median": None}
    return {
        "min": min(values),
        "max": max(values),
        "mean": round(statistics.fmean(values), 1),
        "median": statistics.median(values),
    }


CHECK_SLICE = 1024  # files handed to the checking threads at a time


def build_report(
    index: DatasetIndex,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DatasetReport:
    """Decode and hash every indexed file (threaded: PIL and hashlib release the GIL)."""
    items: list[tuple[str, Sample]] = index.all_samples()
    total = len(items)
    results: list[CheckResult] = [(None, None, None)] * total
    step = max(1, total // 100)
    if progress:
        progress(0, total)
    done = 0
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 4) as pool:
        # in slices: a future per file for 100k files held ~200 MB until the end
        for start in range(0, total, CHECK_SLICE):
            futures = {
                pool.submit(_check_file, items[i][1].path): i
                for i in range(start, min(start + CHECK_SLICE, total))
            }
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                done += 1
                if progress and (done % step == 0 or done == total):
                    progress(done, total)

    counts = {split: dict.fromkeys(index.classes, 0) for split in index.splits}
    unreadable: list[dict] = []
    by_hash: dict[str, list[int]] = {}
    widths: list[int] = []
    heights: list[int] = []
    for i, ((split, sample), (digest, size, reason)) in enumerate(zip(items, results, strict=True)):
        if reason is not None or digest is None or size is None:
            unreadable.append({"path": sample.path, "reason": reason or "unknown error"})
            continue
        counts[split][index.classes[sample.label]] += 1
        by_hash.setdefault(digest, []).append(i)
        widths.append(size[0])
        heights.append(size[1])

    duplicates = []
    for members in by_hash.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda i: items[i][1].path)
        classes = [index.classes[items[i][1].label] for i in members]
        splits = [items[i][0] for i in members]
        duplicates.append(
            {
                "paths": [items[i][1].path for i in members],
                "classes": classes,
                "splits": splits,
                "cross_class": len(set(classes)) > 1,
                "cross_split": len(set(splits)) > 1,
            }
        )
    duplicates.sort(key=lambda g: g["paths"][0])

    return DatasetReport(
        root=index.root,
        layout=index.layout,
        classes=list(index.classes),
        counts=counts,
        unreadable=unreadable,
        ignored=list(index.ignored),
        empty_classes=list(index.empty_classes),
        too_small=list(index.too_small),
        duplicates=duplicates,
        size_stats={"width": _stats(widths), "height": _stats(heights), "count": len(widths)},
        unreadable_dirs=list(getattr(index, "unreadable_dirs", [])),
        outside_roots=list(getattr(index, "outside_roots", [])),
    )


def _printable(text: str) -> str:
    """File and class names as a terminal can show them: bytes that are not UTF-8 would crash
    print(), and control characters would be acted on (``names.printable``)."""
    return printable(text)


def format_report(report: DatasetReport) -> str:
    """Plain-text report for the terminal: counts per class and split, sizes, then problems."""
    splits = list(report.counts)
    lines = [
        _printable(f"Dataset {report.root}"),
        f"Layout: {report.layout}, {len(report.classes)} classes",
        "",
    ]
    width = max([len("class"), len("total")] + [len(_printable(c)) for c in report.classes])
    cols = [*splits, "total"]
    colw = [max(len(c), 6) for c in cols]
    lines.append(
        "  ".join(["class".ljust(width)] + [c.rjust(w) for c, w in zip(cols, colw, strict=True)])
    )
    totals = dict.fromkeys(splits, 0)
    for cls in report.classes:
        row = [report.counts[s].get(cls, 0) for s in splits]
        for s, n in zip(splits, row, strict=True):
            totals[s] += n
        cells = [str(n).rjust(w) for n, w in zip([*row, sum(row)], colw, strict=True)]
        lines.append("  ".join([_printable(cls).ljust(width), *cells]))
    row = [totals[s] for s in splits]
    cells = [str(n).rjust(w) for n, w in zip([*row, sum(row)], colw, strict=True)]
    lines.append("  ".join(["total".ljust(width), *cells]))
    lines.append("")

    st = report.size_stats
    if st.get("count"):
        for dim in ("width", "height"):
            d = st[dim]
            lines.append(
                f"{dim.capitalize():<7} min {d['min']}, max {d['max']}, "
                f"mean {d['mean']}, median {d['median']} px"
            )
        lines.append(f"({st['count']} readable images)")
    else:
        lines.append("No readable images.")
    if report.ignored:
        lines.append(f"Ignored {len(report.ignored)} non-image, hidden or system file(s).")
    same = sum(1 for g in report.duplicates if not (g["cross_class"] or g["cross_split"]))
    if same:
        lines.append(f"{same} group(s) of identical files within one class and split.")
    lines.append("")

    problems = report.problems
    if problems:
        lines.append(f"Problems ({len(problems)}):")
        lines.extend(_printable(f"  - {p}") for p in problems)
    else:
        lines.append("No problems found.")
    return "\n".join(lines)
