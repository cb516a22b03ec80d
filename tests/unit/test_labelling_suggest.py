"""The head that asks for labels, its calibrated accept bar, "more like this", the map and its
HTML file, on made-up features (clusters a person would label) and tiny made-up images."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from modelkit.labelling import layout
from modelkit.labelling.html_map import render
from modelkit.labelling.suggest import k_center, nearest, suggest


def clusters(per: int = 40, k: int = 3, dims: int = 16, spread: float = 0.3, seed: int = 0):
    """``k`` well-separated clusters of ``per`` points each; (features, true labels)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dims)) * 3
    x = np.concatenate([c + spread * rng.normal(size=(per, dims)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(k), per)


def test_before_any_label_the_first_asks_cover_every_cluster():
    x, y = clusters()
    r = suggest(x, np.full(len(x), -1), 3, ask=3)
    assert not r.ready
    assert sorted(y[[a.row for a in r.asks]]) == [0, 1, 2]  # one from each, not three alike


def test_a_batch_of_asks_holds_no_near_copies():
    x, y = clusters(per=30)
    x = np.concatenate([x, np.repeat(x[:1], 10, axis=0)])  # ten copies of one photo
    y = np.r_[y, np.zeros(10, int)]
    labels = np.full(len(x), -1)
    labels[[0, 1, 30, 31, 60, 61]] = y[[0, 1, 30, 31, 60, 61]]
    rows = [a.row for a in suggest(x, labels, 3, ask=6).asks]
    assert len(rows) == 6 and len(set(rows)) == 6
    assert sum(r >= 90 for r in rows) <= 1  # at most one of the copies


def test_the_accept_bar_labels_only_what_the_head_gets_right():
    x, y = clusters(per=60, spread=0.4)
    labels = np.full(len(x), -1)
    for c in range(3):
        labels[np.flatnonzero(y == c)[:12]] = c
    r = suggest(x, labels, 3, ask=5, target=0.95)
    assert r.ready and r.reached and r.estimated_accuracy == 1.0
    accepted = r.accept_rows(labels)
    assert len(accepted) > 100  # the easy ones, in one step
    assert np.all(r.guess[accepted] == y[accepted])
    assert not set(accepted) & set(np.flatnonzero(labels >= 0))  # only unlabelled rows


def test_no_bar_is_offered_while_held_out_labels_miss_the_target():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 8)).astype(np.float32)  # noise: nothing to learn
    labels = np.full(80, -1)
    labels[:30] = rng.integers(0, 2, 30)
    r = suggest(x, labels, 2, target=0.95)
    assert r.ready and not r.reached
    assert len(r.accept_rows(labels)) == 0


def test_k_center_spreads_and_nearest_finds_the_same_cluster():
    x, y = clusters()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    picks = k_center(xn, np.arange(len(x)), np.array([], dtype=np.int64), 3)
    assert sorted(y[picks]) == [0, 1, 2]
    rows, sims = nearest(x, 5, k=10)
    assert 5 not in rows and np.all(y[rows] == y[5])
    assert np.all(np.diff(sims) <= 1e-6)  # most similar first


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_the_map_keeps_clusters_apart_in_the_unit_square(method):
    x, y = clusters(per=25)
    coords = layout.project(x, method)
    assert coords.shape == (75, 2) and coords.min() >= 0 and coords.max() <= 1
    centres = np.array([coords[y == c].mean(0) for c in range(3)])
    within = max(np.linalg.norm(coords[y == c] - centres[c], axis=1).mean() for c in range(3))
    between = min(np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a))
    assert between > 2 * within


def test_a_map_is_made_once_per_set_of_images(tmp_path):
    x, _ = clusters(per=10)
    keys = [f"k{i}" for i in range(len(x))]
    first = layout.cached_map(x, keys, tmp_path, "pca")
    assert len(list(tmp_path.glob("map-*.npy"))) == 1
    again = layout.cached_map(x * 0, keys, tmp_path, "pca")  # read back, not recomputed
    assert np.array_equal(first, again)
    with pytest.raises(layout.LayoutError, match="not one of"):
        layout.project(x, "mds")


def test_the_html_map_is_offline_and_escapes_every_name():
    coords = np.array([[0.1, 0.2], [0.8, 0.9]])
    thumbs = np.zeros((2, 48, 48, 3), np.uint8)
    evil = '"><script>alert(1)</script>.png'
    page = render(coords, [evil, "b.png"], thumbs, ['<img src=x onerror="bad">', None], "t")
    assert "<script>alert" not in page and 'onerror="bad"' not in page
    assert html.escape(evil, quote=True) in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched from elsewhere
    assert page.count("<circle") == 2 and "data:image/png;base64," in page


def test_images_set_aside_are_never_asked_about_nor_accepted():
    x, y = clusters(per=20)
    labels = np.full(len(x), -1)
    labels[20:40] = -2  # the whole second cluster is in the not-sure bin
    r = suggest(x, labels, 3, ask=10)
    assert not any(20 <= a.row < 40 for a in r.asks)
    labels[[0, 1, 40, 41]] = y[[0, 1, 40, 41]]
    r = suggest(x, labels, 3, ask=10, target=0.5)
    assert not any(20 <= a.row < 40 for a in r.asks)
    assert not any(20 <= row < 40 for row in r.accept_rows(labels))


def test_a_round_fits_its_temperature_on_one_thread(monkeypatch):
    """On a busy 2-core machine a thread pool made each small step of a round wait on
    descheduled threads (the temperature fit took seconds): the whole round runs on one."""
    from threadpoolctl import threadpool_info

    from modelkit.evaluation import calibration

    seen = []
    fit = calibration.fit_temperature

    def spy(logits, labels):
        seen.append({lib["user_api"]: lib["num_threads"] for lib in threadpool_info()})
        return fit(logits, labels)

    monkeypatch.setattr(calibration, "fit_temperature", spy)
    x, y = clusters()
    labels = np.full(len(x), -1)
    labels[[0, 1, 2, 40, 41, 42, 80, 81, 82]] = y[[0, 1, 2, 40, 41, 42, 80, 81, 82]]
    r = suggest(x, labels, 3, ask=4)
    assert r.ready and len(r.asks) == 4
    assert seen and all(n == 1 for threads in seen for n in threads.values())
