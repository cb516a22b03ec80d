"""auto's next runs reuse its winner's stage maps (or a head-only winner's cached features):
inside ``keeping_stage_maps`` a run with the same frozen stages, images and views trains on the
maps the run before computed and ends with the weights it would have had computing its own;
anything that changes the maps, or leaving the block, computes them again."""

from __future__ import annotations

import pytest
import torch

from modelkit.events import CacheProgress, Message
from modelkit.training import kept_maps
from modelkit.training.kept_maps import keeping_stage_maps
from modelkit.training.loop import Trainer

MAPS = dict(frozen_stages=2, cache_frozen_stages=True, hflip=True, feature_passes=3)
HEAD_ONLY = dict(freeze_backbone=True, feature_cache=True, hflip=True, feature_passes=3)


def _fit(config) -> tuple[Trainer, list]:
    events: list = []
    trainer = Trainer(config, [events.append])
    assert trainer.fit().state == "finished"
    return trainer, events


def _computed_maps(events: list, stage: str = "frozen stages") -> bool:
    return any(isinstance(e, CacheProgress) and e.stage == stage for e in events)


def _reused(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, Message) and "the run before" in e.text]


# (settings, the step that computes them, the trainer's attribute, what a run reusing them says)
KINDS = {
    "stage maps": (
        MAPS, "frozen stages", "stage_cache",
        "fine-tuning after the first 2 stages on the stage maps the run before computed "
        "(2 of 3 training passes)",
    ),
    "head features": (
        HEAD_ONLY, "features", "features",
        "frozen backbone: the head trains on the features the run before computed "
        "(2 of 3 augmentation passes)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_a_longer_run_trains_on_what_its_winner_computed_to_the_same_weights(make_config, kind):
    settings, stage, attr, said = KINDS[kind]
    with keeping_stage_maps():
        first, first_events = _fit(make_config(epochs=2, **settings))
        assert kept_maps.kept_seconds() > 0  # what the next run is not charged (recipes.longer)
        longer, events = _fit(make_config(epochs=4, **settings))
    assert _computed_maps(first_events, stage) and not _reused(first_events)
    # the first two passes came from the winner; the third (a random view, 4 epochs) was drawn
    # by the winner's generator where it stopped, and is the only one computed
    assert _reused(events) == [said]
    assert getattr(longer, attr).splits["val"] is getattr(first, attr).splits["val"]
    assert len(getattr(longer, attr).train_passes) == 3
    alone, alone_events = _fit(make_config(epochs=4, **settings))  # outside: its own
    assert _computed_maps(alone_events, stage) and not _reused(alone_events)
    for (name, a), b in zip(longer.model.state_dict().items(), alone.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name


def test_other_maps_are_computed_and_replace_the_kept_ones(make_config):
    with keeping_stage_maps():
        _fit(make_config(epochs=1, **MAPS))
        other, events = _fit(make_config(epochs=1, image_size=40, **MAPS))
        assert _computed_maps(events) and not _reused(events)
        kept = kept_maps._kept
        assert kept is not None and kept[1].splits["val"] is other.stage_cache.splits["val"]
    assert kept_maps._kept is None  # let go when the block ends


def test_runs_outside_the_block_keep_nothing(make_config):
    _fit(make_config(epochs=1, **MAPS))
    assert kept_maps._kept is None
    _trainer, events = _fit(make_config(epochs=1, **MAPS))
    assert _computed_maps(events) and not _reused(events)


def test_another_backbone_computes_its_own_features(make_config):
    with keeping_stage_maps():
        _fit(make_config(epochs=1, **HEAD_ONLY))
        _trainer, events = _fit(make_config(epochs=1, seed=5, **HEAD_ONLY))
    assert _computed_maps(events, "features") and not _reused(events)
