"""Every image of a labelling folder embedded once, with the bundled backbone, and kept on disk
so a second visit (or a folder with a few new photos) embeds only what is new.

The features are the cleaner's (``modelkit.cleaning.features``: EfficientNet-Lite0's ImageNet
penultimate layer, or colour thumbnails for tests), computed through the same decode cache
(``ImageCache``) and batched backbone pass (``training.features.backbone_features``). What this
module adds is the store: ``DATA/.modelkit-labelling/`` holds ``features-<gen>.npy`` (N x D
float32), ``thumbs-<gen>.npy`` (N x 48 x 48 x 3 uint8, for the map and the grid) and
``index.json`` naming the generation and each row's file.

A row is found by file identity, not by path, because labelling moves files: first by
(inode, size, mtime), which a move keeps, then by (name, size, mtime), which a copy keeps. A file
edited in place gets a new mtime and is embedded again. Files that do not decode are remembered
the same way, with the reason, and are not decoded again.

Memory stays bounded at any folder size: images are decoded and embedded in chunks of
``CHUNK`` files, new rows go straight to memory-mapped files, and the generation is switched by
rewriting ``index.json`` atomically after the arrays are on disk, so a crash leaves the old
store whole. One process writes at a time (an ``flock`` on ``.lock``).
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelkit.atomic import atomic_write_json
from modelkit.errors import ModelkitError

CHUNK = 256  # files decoded and embedded at a time: a few hundred MB of pixels at most
THUMB = 48  # thumbnail side in pixels
VERSION = 1
ENGINES = ("auto", "openvino", "pytorch")  # what runs the forward pass: see _Embedder
Progress = Callable[[str, float], None]


class StoreError(ModelkitError, RuntimeError):
    """The feature store cannot be used (a symlink where its folder should be); says which."""


@dataclass
class FeatureTable:
    """Features of the images that decode, in the order asked; ``errors`` holds the others."""

    paths: list[str]
    features: np.ndarray  # N x D float32, in memory
    thumbs: np.ndarray  # N x THUMB x THUMB x 3 uint8 (read from disk on access)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, why it was skipped)
    source: str = ""
    embedded: int = 0  # images embedded by this call; the rest came from the store
    seconds: float = 0.0
    keys: list[str] = field(default_factory=list)  # each row's file identity (names a map)

    def __post_init__(self) -> None:
        self._row = {p: i for i, p in enumerate(self.paths)}

    def row(self, path: str) -> int | None:
        return self._row.get(path)

    def rows(self, paths: Sequence[str]) -> np.ndarray:
        """Rows of ``paths`` that are in the table (others are left out)."""
        return np.array([self._row[p] for p in paths if p in self._row], dtype=np.int64)


def _keys(path: str) -> tuple[str, str]:
    st = os.stat(path)
    tail = f"{st.st_size}:{st.st_mtime_ns}"
    return f"i{st.st_dev}:{st.st_ino}:{tail}", f"n{os.path.basename(path)}:{tail}"


def _reason(exc: OSError) -> str:
    return "file not found" if isinstance(exc, FileNotFoundError) else f"cannot read: {exc}"


class _Store:
    """The arrays of one generation and the index that names them (see the module docstring)."""

    def __init__(self, folder: Path, source: str):
        self.folder, self.source = folder, source
        self.keys: list[list[str]] = []
        self.bad: dict[str, str] = {}
        self.features: np.ndarray | None = None
        self.thumbs: np.ndarray | None = None
        self.gen = 0
        try:
            index = json.loads(_regular(folder / "index.json").read_text(encoding="utf-8"))
            if index.get("version") != VERSION or index.get("source") != source:
                return
            gen = int(index["gen"])
            feats = np.load(_regular(folder / f"features-{gen}.npy"), mmap_mode="r")
            thumbs = np.load(_regular(folder / f"thumbs-{gen}.npy"), mmap_mode="r")
            keys, bad = index["keys"], dict(index["bad"])
            if not len(feats) == len(thumbs) == len(keys):
                return
        except (OSError, ValueError, KeyError, TypeError):
            return  # no store, or one this version cannot read: embed afresh
        self.gen, self.keys, self.bad, self.features, self.thumbs = gen, keys, bad, feats, thumbs

    def lookup(self) -> dict[str, int]:
        where: dict[str, int] = {}
        for r, (ident, name) in enumerate(self.keys):
            where.setdefault(ident, r)
            where.setdefault(name, r)
        return where


def _regular(path: Path) -> Path:
    """``path`` if it is a regular file itself (a link or a FIFO in an untrusted folder is
    never read); ValueError otherwise, which reads as "no store"."""
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise ValueError(f"{path}: not a regular file")
    return path


def _open_folder(cache_dir: str | os.PathLike) -> Path:
    folder = Path(cache_dir)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise StoreError(f"{folder}: not a plain folder; the feature store writes nowhere else")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _thumbnails(squares: np.ndarray) -> np.ndarray:
    import torch

    x = torch.from_numpy(np.ascontiguousarray(squares)).permute(0, 3, 1, 2).float()
    small = torch.nn.functional.interpolate(x, size=(THUMB, THUMB), mode="area")
    return small.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


class _Embedder:
    """Decode and embed chunks of files with one model, loaded once. On a CPU the forward pass
    runs in OpenVINO where it can (``backbone``: about ten times PyTorch's speed there);
    ``engine="pytorch"`` keeps PyTorch, ``"openvino"`` insists on OpenVINO."""

    def __init__(self, source: str, device: str, engine: str = "auto"):
        from modelkit.cleaning.features import BUNDLED_ARCH, PIXELS, PRETRAINED, _model_for
        from modelkit.data.imageio import resize_size_for
        from modelkit.device import pick_device, resolve_precision
        from modelkit.labelling import backbone
        from modelkit.models.registry import ARCHITECTURES

        self.pixels = source == PIXELS
        self.forward: Callable[[np.ndarray], np.ndarray] | None = None
        if self.pixels:
            self.side = 32
            return
        self.dev = pick_device(device)
        self.precision = resolve_precision("auto", self.dev)
        fast = engine != "pytorch" and self.dev.type == "cpu"
        if fast and source == PRETRAINED:  # converted once per process, no PyTorch model kept
            self.arch, self.size = BUNDLED_ARCH, ARCHITECTURES[BUNDLED_ARCH].image_size
            self.forward = backbone.bundled(self.arch, self.size, self.precision)
        if self.forward is None:
            self.model, self.arch, self.size, _ = _model_for(source, 2)
            if fast and source != PRETRAINED:
                self.forward = backbone.openvino_forward(
                    self.model, self.arch, self.size, self.precision
                )
            self.model.to(self.dev)
        if engine == "openvino" and self.forward is None:
            raise StoreError("engine 'openvino': OpenVINO is not installed or cannot run this")
        self.side = resize_size_for(self.size)

    def __call__(self, paths: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
        """(features, thumbnails, which paths decoded, [(path, why)] for the others)."""
        from modelkit.cleaning.features import _pixels
        from modelkit.data.cache import ImageCache
        from modelkit.labelling import backbone
        from modelkit.training.features import backbone_features

        cache = ImageCache(paths, self.side, store=None, workers=min(4, os.cpu_count() or 1))
        rows = np.flatnonzero(cache.valid)
        if self.pixels:
            feats = _pixels(cache)[rows]
        elif not len(rows):
            feats = np.zeros((0, 0), np.float32)
        elif self.forward is not None:
            feats = backbone.features(self.forward, self.arch, cache, rows, self.size)
        else:
            out = backbone_features(
                self.model, self.arch, cache, rows, self.size, self.dev, self.precision
            )
            feats = out.float().cpu().numpy()
        return feats.astype(np.float32), _thumbnails(cache.array[rows]), cache.valid, cache.errors


def embed_folder_images(
    paths: Sequence[str],
    cache_dir: str | os.PathLike,
    source: str = "pretrained",
    device: str = "auto",
    progress: Progress | None = None,
    engine: str = "auto",
) -> FeatureTable:
    """Features and thumbnails of ``paths``, from the store in ``cache_dir`` where it has them,
    embedded (and added to the store) where it does not. ``source`` is ``"pretrained"`` (the
    bundled backbone) or ``"pixels"``; ``progress(stage, fraction)`` is told how far it is;
    ``engine`` runs the forward pass (see ``_Embedder``)."""
    if engine not in ENGINES:
        raise StoreError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    start = time.perf_counter()
    tell = progress or (lambda _stage, _fraction: None)
    folder = _open_folder(cache_dir)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _embed_locked(list(paths), folder, source, device, engine, tell, start)
    finally:
        os.close(fd)


def _embed_locked(paths, folder, source, device, engine, tell, start) -> FeatureTable:
    store = _Store(folder, source)
    where = store.lookup()
    keys: list[tuple[str, str] | None] = []
    errors: list[tuple[str, str]] = []
    for p in paths:
        try:
            keys.append(_keys(p))
        except OSError as exc:
            keys.append(None)
            errors.append((p, _reason(exc)))
    old_rows = {i: where.get(k[0], where.get(k[1])) for i, k in enumerate(keys) if k}
    for i, r in list(old_rows.items()):
        if r is None and (why := store.bad.get(keys[i][0])):
            errors.append((paths[i], why))
            del old_rows[i]
    misses = [i for i, r in old_rows.items() if r is None]
    new_feats, new_thumbs, made = [], [], {}
    bad = {k[0]: store.bad[k[0]] for k in keys if k and k[0] in store.bad}
    if misses:
        embed = _Embedder(source, device, engine)
        for c in range(0, len(misses), CHUNK):
            chunk = misses[c : c + CHUNK]
            feats, thumbs, valid, errs = embed([paths[i] for i in chunk])
            reasons = dict(errs)
            for i, ok in zip(chunk, valid):
                if ok:
                    made[i] = len(made)
                else:
                    why = reasons.get(paths[i], "cannot decode")
                    errors.append((paths[i], why))
                    bad[keys[i][0]] = why
            new_feats.append(_spill(feats, folder))
            new_thumbs.append(_spill(thumbs, folder))
            tell("embedding", min(1.0, (c + len(chunk)) / len(misses)))
    kept = sorted({r for r in old_rows.values() if r is not None})
    if made or len(kept) != len(store.keys) or bad != store.bad:
        store = _write(store, kept, new_feats, new_thumbs, keys, made, bad)
        row_of_old = {r: n for n, r in enumerate(kept)}
        old_rows = {i: row_of_old[r] for i, r in old_rows.items() if r is not None}
        old_rows.update({i: len(kept) + m for i, m in made.items()})
    order = [i for i in range(len(paths)) if old_rows.get(i) is not None]
    rows = np.array([old_rows[i] for i in order], dtype=np.int64)
    dim = store.features.shape[1] if store.features is not None else 0
    feats = np.asarray(store.features[rows]) if len(rows) else np.zeros((0, dim), np.float32)
    thumbs = store.thumbs[rows] if len(rows) else np.zeros((0, THUMB, THUMB, 3), np.uint8)
    errors.sort()
    seconds = time.perf_counter() - start
    return FeatureTable(
        [paths[i] for i in order], feats, thumbs, errors, source, len(made), seconds,
        [keys[i][0] for i in order],
    )  # fmt: skip


def _spill(array: np.ndarray, folder: Path) -> np.ndarray:
    """``array`` moved to an unlinked temp file in ``folder`` (read back through a mapping)."""
    if not array.size:
        return array
    fd, name = tempfile.mkstemp(dir=folder, prefix=".spill-", suffix=".npy")
    os.close(fd)
    try:
        np.save(name, array, allow_pickle=False)
        return np.load(name, mmap_mode="r")
    finally:
        os.unlink(name)  # the mapping keeps the data; nothing is left behind


def _write(store: _Store, kept, new_feats, new_thumbs, keys, made, bad) -> _Store:
    """The next generation: the old rows still in use, then the new ones; the index last."""
    parts = [p for p in new_feats if p.size]
    dim = parts[0].shape[1] if parts else (store.features.shape[1] if kept else 0)
    total = len(kept) + len(made)
    gen = store.gen + 1
    arrays = {}
    for name, shape, dtype, old, new in (
        ("features", (total, dim), np.float32, store.features, parts),
        ("thumbs", (total, THUMB, THUMB, 3), np.uint8, store.thumbs, new_thumbs),
    ):
        fd, tmp = tempfile.mkstemp(dir=store.folder, prefix=f".{name}-", suffix=".tmp")
        os.close(fd)  # a name of our own: a link planted in the folder is never written through
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        for s in range(0, len(kept), CHUNK):
            rows = kept[s : s + CHUNK]
            out[s : s + len(rows)] = old[rows]
        at = len(kept)
        for block in new:
            if len(block):
                out[at : at + len(block)] = block
                at += len(block)
        out.flush()
        del out
        _fsync(tmp)  # on disk before the index names it
        path = store.folder / f"{name}-{gen}.npy"
        os.replace(tmp, path)
        arrays[name] = np.load(path, mmap_mode="r")
    made_keys = sorted(made, key=made.get)
    index_keys = [store.keys[r] for r in kept] + [list(keys[i]) for i in made_keys]
    index = {"version": VERSION, "source": store.source, "gen": gen, "keys": index_keys}
    index["bad"] = bad
    atomic_write_json(store.folder / "index.json", index)
    for old in store.folder.glob("*-*.npy"):  # the generations before: our own files only
        if old.name not in (f"features-{gen}.npy", f"thumbs-{gen}.npy"):
            old.unlink(missing_ok=True)
    nxt = _Store.__new__(_Store)
    nxt.folder, nxt.source, nxt.gen, nxt.keys, nxt.bad = store.folder, store.source, gen, [], bad
    nxt.keys, nxt.features, nxt.thumbs = index_keys, arrays["features"], arrays["thumbs"]
    return nxt


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
