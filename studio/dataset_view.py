"""What the Dataset page draws, computed without Streamlit: figures, table rows and thumbnails.

``dataset_view`` turns a DatasetIndex and its DatasetReport into one picklable DatasetView (the
page caches it); ``counts_bar`` is the plotly figure of images per class and split.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from modelkit.data.imageio import SYSTEM_FILES, ImageLoadError, ImageSource, load_image
from modelkit.data.report import DatasetReport
from modelkit.data.scan import DatasetIndex
from studio.figures import plotly_label

SPLIT_COLOURS = {"train": "#4C78A8", "val": "#F58518", "test": "#54A24B"}
OTHER_COLOURS = ["#B279A2", "#72B7B2", "#E45756", "#9D755D"]


def _colour(split: str, n: int) -> str:
    return SPLIT_COLOURS.get(split, OTHER_COLOURS[n % len(OTHER_COLOURS)])


def counts_bar(counts: dict[str, dict[str, int]], title: str | None = None) -> go.Figure:
    """Grouped bars: images per class (x) with one bar and colour per split."""
    classes: list[str] = []
    for row in counts.values():
        classes.extend(c for c in row if c not in classes)
    fig = go.Figure()
    for n, (split, row) in enumerate(counts.items()):
        fig.add_trace(
            go.Bar(
                name=split,
                x=[plotly_label(c) for c in classes],
                y=[row.get(c, 0) for c in classes],
                marker_color=_colour(split, n),
                hovertemplate="%{x}<br>" + split + ": %{y} images<extra></extra>",
            )
        )
    many = len(classes) > 20
    fig.update_layout(
        barmode="group",
        title=title,
        xaxis_title="class",
        yaxis_title="images",
        legend_title_text="split",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 10, "r": 10, "t": 40 if title else 30, "b": 10},
        height=420 if many else 340,
        bargap=0.15 if many else 0.25,
    )
    fig.update_xaxes(type="category", tickangle=-60 if many else 0)
    return fig


def counts_rows(counts: dict[str, dict[str, int]]) -> list[dict]:
    """One row per class with a column per split and a total, then a total row."""
    splits = list(counts)
    classes: list[str] = []
    for row in counts.values():
        classes.extend(c for c in row if c not in classes)
    rows = []
    for cls in classes:
        row = {"class": cls, **{s: counts[s].get(cls, 0) for s in splits}}
        row["total"] = sum(row[s] for s in splits)
        rows.append(row)
    total = {"class": "total", **{s: sum(counts[s].values()) for s in splits}}
    total["total"] = sum(total[s] for s in splits)
    return [*rows, total]


def _rel(path: str, root: str) -> str:
    try:
        rel = os.path.relpath(path, root)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def problem_rows(report: DatasetReport, index: DatasetIndex | None = None) -> list[dict]:
    """What to fix before training, one row each: ``file``, ``class``, ``split``, ``problem``.

    The rows are the report's issues, the list its problem count comes from, so a headline and
    this table always agree; identical files are listed by ``duplicate_rows``. The report keeps
    no class or split per unreadable file; ``index`` knows them."""
    where = (
        {
            _rel(s.path, report.root): (split, index.classes[s.label])
            for split, s in index.all_samples()
        }
        if index is not None
        else {}
    )
    rows = []
    for issue in report.issues:
        row = issue.row()
        if issue.file and not issue.cls and issue.file in where:
            row["split"], row["class"] = where[issue.file]
        rows.append(row)
    return rows


def duplicate_rows(report: DatasetReport) -> list[dict]:
    """Groups of byte-identical files, label conflicts and split leaks first."""
    rows = []
    for group in report.duplicates:
        rows.append(
            {
                "files": len(group["paths"]),
                "cross_class": group["cross_class"],
                "cross_split": group["cross_split"],
                "paths": ", ".join(_rel(p, report.root) for p in group["paths"]),
                "classes": ", ".join(dict.fromkeys(group["classes"])),
                "splits": ", ".join(dict.fromkeys(group["splits"])),
            }
        )
    rows.sort(key=lambda r: (not r["cross_class"], not r["cross_split"], r["paths"]))
    return rows


def split_rows(index: DatasetIndex, names_per_split: int = 3) -> list[dict]:
    """Per split: image and class counts and a few example file names."""
    rows = []
    for split, samples in index.splits.items():
        per_class = np.bincount([s.label for s in samples], minlength=len(index.classes))
        step = max(1, len(samples) // max(names_per_split, 1))
        examples = [_rel(s.path, index.root) for s in samples[::step][:names_per_split]]
        rows.append(
            {
                "split": split,
                "images": len(samples),
                "classes": int((per_class > 0).sum()),
                "per class (min-max)": f"{per_class.min()}-{per_class.max()}"
                if len(per_class)
                else "",
                "examples": ", ".join(examples),
            }
        )
    return rows


def split_description(index: DatasetIndex, val_ratio: float, test_ratio: float = 0.0) -> str:
    """One sentence on where the split comes from."""
    if index.layout == "splits":  # which folder is used for what, val drawn from train or not
        given = "" if index.val_from_train is not None else " The split is used as given."
        return index.layout_note() + given
    parts = [f"{val_ratio:.0%} to val"]
    if test_ratio:
        parts.append(f"{test_ratio:.0%} to test")
    return (
        "No train/val folders, so each class is split automatically ("
        + ", ".join(parts)
        + ", the same every time)."
    )


def sample_paths(
    index: DatasetIndex, report: DatasetReport | None = None, per_class: int = 4
) -> dict[str, list[str]]:
    """A few readable files per class, spread over the class (training split first)."""
    bad = {u["path"] for u in report.unreadable} if report else set()
    by_class: dict[str, list[str]] = {c: [] for c in index.classes}
    for _, s in index.all_samples():
        if s.path not in bad:
            by_class[index.classes[s.label]].append(s.path)
    out = {}
    for cls, paths in by_class.items():
        if len(paths) <= per_class:
            out[cls] = paths
        else:
            picks = np.linspace(0, len(paths) - 1, per_class).round().astype(int)
            out[cls] = [paths[i] for i in dict.fromkeys(picks.tolist())]
    return out


def fit_thumbnail(source: ImageSource, size: int, enlarge: bool = False) -> Image.Image:
    """The image fitted into a ``size`` square, upright RGB; raises ImageLoadError.

    ``enlarge`` scales tiny images (CIFAR's 32 px) up so they can be seen."""
    img = load_image(source if isinstance(source, bytes) else os.fspath(source), min_size=size)
    w, h = img.size
    if enlarge and max(w, h) < size:
        scale = size / max(w, h)
        return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
    img.thumbnail((size, size), Image.BILINEAR)
    return img


def thumbnail(path: str | os.PathLike, size: int = 96) -> np.ndarray | None:
    """The image fitted into a ``size`` square (uint8 HxWx3, upright RGB); None if unreadable."""
    try:
        img = fit_thumbnail(path, size, enlarge=True)
    except (ImageLoadError, OSError):
        return None
    return np.asarray(img, dtype=np.uint8).copy()


def thumbnail_jpeg(
    source: ImageSource, size: int, letterbox: tuple[int, int, int] | None = None
) -> bytes:
    """JPEG bytes of a small thumbnail for a page; ``letterbox`` pads it to a square of that
    colour so cards line up. Raises ImageLoadError naming the file."""
    img = fit_thumbnail(source, size)
    if letterbox is not None:
        square = Image.new("RGB", (size, size), letterbox)
        square.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
        img = square
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def contact_sheet(
    paths: list[str],
    size: int = 80,
    gap: int = 3,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray | None:
    """Thumbnails of ``paths`` in a row, each centred in a ``size`` square; None if none load."""
    thumbs = [t for t in (thumbnail(p, size) for p in paths) if t is not None]
    if not thumbs:
        return None
    width = len(thumbs) * size + (len(thumbs) - 1) * gap
    sheet = np.empty((size, width, 3), dtype=np.uint8)
    sheet[:] = background
    for n, t in enumerate(thumbs):
        h, w = t.shape[:2]
        top, left = (size - h) // 2, n * (size + gap) + (size - w) // 2
        sheet[top : top + h, left : left + w] = t
    return sheet


def skipped_files(report: DatasetReport) -> list[str]:
    """Files the scan left out that a person may have meant as data (not hidden or system files).

    A ``.heic`` photo or a stray PDF lands here; ``.DS_Store`` and marker files do not.
    """
    out = []
    for path in report.ignored:
        rel = _rel(path, report.root)
        parts = rel.replace(os.sep, "/").split("/")
        if any(p.startswith(".") or p.lower() in SYSTEM_FILES for p in parts):
            continue
        if os.path.isdir(path):
            continue
        out.append(rel)
    return out


def size_rows(report: DatasetReport) -> list[dict]:
    """Width and height statistics of the readable images, one row each."""
    stats = report.size_stats or {}
    rows = []
    for dim in ("width", "height"):
        d = stats.get(dim) or {}
        rows.append(
            {
                "": dim,
                "min": d.get("min"),
                "median": d.get("median"),
                "mean": d.get("mean"),
                "max": d.get("max"),
            }
        )
    return rows


@dataclass
class DatasetView:
    """Everything the Dataset page shows about one dataset; small and picklable for caching."""

    report: DatasetReport
    split_text: str
    counts: list[dict] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    splits: list[dict] = field(default_factory=list)
    samples: dict[str, list[str]] = field(default_factory=dict)
    sizes: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        return sum(sum(row.values()) for row in self.report.counts.values())


def dataset_view(
    index: DatasetIndex,
    report: DatasetReport,
    val_ratio: float = 0.2,
    test_ratio: float = 0.0,
    per_class: int = 4,
) -> DatasetView:
    return DatasetView(
        report=report,
        split_text=split_description(index, val_ratio, test_ratio),
        counts=counts_rows(report.counts),
        problems=problem_rows(report, index),
        duplicates=duplicate_rows(report),
        splits=split_rows(index),
        samples=sample_paths(index, report, per_class),
        sizes=size_rows(report),
        skipped=skipped_files(report),
    )
