"""The decode store shared by runs in one process: hits for unchanged files, a fresh decode for
a file whose content changed, even with the same size and mtime."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from modelkit.data.cache import DecodedStore, ImageCache


def _write(path, colour, size=(40, 30)):
    Image.new("RGB", size, colour).save(path)


def test_second_cache_reuses_decoded_squares(tmp_path):
    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        _write(p, (i * 40, 10, 10))
        paths.append(str(p))
    store = DecodedStore()
    first = ImageCache(paths, 16, store=store)
    second = ImageCache(paths, 16, store=store)
    assert first.decoded == 5 and second.decoded == 0
    np.testing.assert_array_equal(first.array, second.array)
    other_size = ImageCache(paths, 20, store=store)
    assert other_size.decoded == 5  # another square size is another entry


def test_a_changed_file_is_decoded_again(tmp_path):
    p = tmp_path / "a.png"
    _write(p, (200, 0, 0))
    stat = os.stat(p)
    store = DecodedStore()
    before = ImageCache([str(p)], 16, store=store)
    assert before.array[0, 8, 8].tolist() == [200, 0, 0]
    _write(p, (0, 0, 200))  # same size in bytes, and the mtime put back as it was
    os.utime(p, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = ImageCache([str(p)], 16, store=store)
    assert after.decoded == 1
    assert after.array[0, 8, 8].tolist() == [0, 0, 200]


def test_store_stays_within_its_budget(tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.png"
        _write(p, (i * 30, 0, 0))
        paths.append(str(p))
    store = DecodedStore(max_bytes=3 * 16 * 16 * 3)
    ImageCache(paths, 16, store=store)
    assert len(store) == 3


def test_missing_file_is_named_with_the_reason(tmp_path):
    cache = ImageCache([str(tmp_path / "gone.png")], 16, store=DecodedStore())
    assert not cache.valid[0]
    assert cache.errors == [(str(tmp_path / "gone.png"), "file not found")]


def test_the_store_keeps_the_cache_rows_not_a_second_copy(tmp_path):
    """A run's memory is its cache, not the cache plus a copy of every square in the store;
    the next cache over the same files takes the entries over, so the first array is let go."""
    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        _write(p, (i * 40, 10, 10))
        paths.append(str(p))
    store = DecodedStore()
    first = ImageCache(paths, 16, store=store)
    assert len(store) == 5 and store.nbytes == first.nbytes  # the rows themselves, counted once
    second = ImageCache(paths, 16, store=store)
    assert second.decoded == 0 and store.nbytes == second.nbytes
    first.array[:] = 0  # what the store serves now lives in the second cache
    third = ImageCache(paths, 16, store=store)
    np.testing.assert_array_equal(third.array, second.array)
    assert third.array.any()
