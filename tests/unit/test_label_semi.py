"""The suggestion head learns from the unlabelled images too: labels spread along the folder's
neighbour graph, blended with the logistic head (suggest.SPREAD_PRIOR). Made-up features: two
curved chains of photos whose ends look alike to a straight line but not along the chain."""

from __future__ import annotations

import numpy as np
import pytest

from modelkit.labelling import suggest as suggest_module
from modelkit.labelling.curve import accuracy_curve
from modelkit.labelling.suggest import SET_ASIDE, pool_log_probs, suggest


def chains(per: int = 100, dims: int = 8, seed: int = 0):
    """Two parallel arcs (a quarter-turn each, one lifted off the other): along an arc the
    photos change slowly; a class's two ends are farther apart than the arcs are from each
    other. (features, true labels)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1.5, per)
    arc = np.zeros((per, dims))
    arc[:, 0], arc[:, 1] = np.cos(t), np.sin(t)
    a, b = arc.copy(), arc.copy()
    b[:, 2] = 0.35
    x = np.concatenate([a, b]) + 0.003 * rng.normal(size=(2 * per, dims))
    return x.astype(np.float32), np.repeat([0, 1], per)


def ends(y: np.ndarray, per: int = 100) -> np.ndarray:
    """Two labels a class at opposite ends: class 0 at the start of its arc, 1 at the end."""
    labels = np.full(len(y), -1)
    labels[[0, 1]] = 0
    labels[[2 * per - 2, 2 * per - 1]] = 1
    return labels


@pytest.fixture
def spread_off(monkeypatch):
    monkeypatch.setattr(suggest_module, "SPREAD_PRIOR", 0.0)


def test_with_two_labels_a_class_every_photo_is_guessed_its_chains_class():
    x, y = chains()
    r = suggest(x, ends(y), 2, ask=4)
    assert r.ready
    assert (r.guess == y).all()


def test_the_logistic_head_alone_gets_part_of_the_chains_wrong(spread_off):
    # what the spread adds: the same labels without it
    x, y = chains()
    r = suggest(x, ends(y), 2, ask=4)
    assert (r.guess != y).sum() >= 20


def test_what_is_accepted_above_the_bar_is_right():
    x, y = chains()
    labels = np.full(len(y), -1)
    labels[::2] = y[::2]  # enough held-out answers for the bar to show 95%
    r = suggest(x, labels, 2, ask=4)
    accepted = r.accept_rows(labels)
    assert r.reached and len(accepted) > 50
    assert (r.guess[accepted] == y[accepted]).all()


def test_a_set_aside_photo_gets_its_neighbours_class_and_spreads_nothing():
    x, y = chains()
    labels = ends(y)
    labels[50] = SET_ASIDE  # in the middle of chain 0
    probs = np.exp(pool_log_probs(suggest_module.normalise(x), labels, 2))
    assert probs[50].argmax() == 0
    # every other photo is guessed as if that one were not in the folder at all
    without = np.exp(pool_log_probs(suggest_module.normalise(np.delete(x, 50, 0)),
                                    np.delete(labels, 50), 2))  # fmt: skip
    np.testing.assert_allclose(np.delete(probs, 50, 0), without, atol=1e-6)


def test_the_curve_estimates_the_head_the_page_uses(monkeypatch):
    x, y = chains()
    labels = np.full(len(y), -1)
    labels[::10] = y[::10]  # 10 labels a class, along the chains
    with_spread = {p.per_class: p.accuracy for p in accuracy_curve(x, labels, per_class=(2, 5))}
    monkeypatch.setattr(suggest_module, "SPREAD_PRIOR", 0.0)
    alone = {p.per_class: p.accuracy for p in accuracy_curve(x, labels, per_class=(2, 5))}
    assert set(with_spread) == {2, 5}
    assert with_spread[2] > alone[2]  # the spread's gain with a few labels shows on the curve
    assert all(0 <= v <= 1 for v in [*with_spread.values(), *alone.values()])
