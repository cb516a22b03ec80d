"""The frozen stages' cached maps are sized before any is computed and held to a budget (issue
#29, second probe): 100 passes of 72 images at 512 px logged "~28800 MB" and went on, RSS
growing by a pass an epoch. The passes are lowered to what fits, with a message, or the run is
refused, naming the sizes, the budget and what to change, before a map is computed."""

from __future__ import annotations

import pytest

from modelkit.events import CacheProgress, Message
from modelkit.training import stage_cache
from modelkit.training.errors import TrainingError
from modelkit.training.loop import Trainer

# resnet18's stem at 32 px: 64 maps of 8x8 floats, 16 KB an image; 24 training images make
# ~384 KB a pass and the 6 validation images ~96 KB, so 1 MB (less the decoded images, ~120
# KB) holds two passes
COMMON = dict(frozen_stages=1, cache_frozen_stages=True, feature_passes=100, hflip=True)


def _texts(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, Message)]


def test_passes_beyond_cache_ram_mb_are_lowered_with_a_message(make_config):
    events: list = []
    trainer = Trainer(make_config(**COMMON, cache_ram_mb=1, epochs=3), [events.append])
    result = trainer.fit()
    assert result.state == "finished"
    (said,) = [t for t in _texts(events) if "instead" in t]
    assert "100 passes" in said and "cache_ram_mb 1" in said
    passes = trainer.stage_cache.passes
    assert 1 <= passes < 100 and f"caching {passes} pass" in said


def test_a_run_whose_one_pass_does_not_fit_is_refused_before_computing_maps(make_config):
    events: list = []
    cfg = make_config(**COMMON, cache_ram_mb=1, image_size=64)  # ~1.5 MB a pass
    with pytest.raises(TrainingError, match="cache_frozen_stages") as info:
        Trainer(cfg, [events.append]).fit()
    message = str(info.value)
    assert "MB a pass" in message and "cache_ram_mb 1" in message
    assert not [e for e in events if isinstance(e, CacheProgress) and "stage maps" in str(e)]


def test_the_machines_available_memory_bounds_the_maps_too(make_config, monkeypatch):
    monkeypatch.setattr(stage_cache, "available_memory", lambda device: 600_000, raising=False)
    with pytest.raises(TrainingError, match="memory available"):
        Trainer(make_config(**COMMON)).fit()  # half of 600 KB: not one pass and the views


def test_passes_that_fit_are_kept(make_config):
    events: list = []
    trainer = Trainer(make_config(**{**COMMON, "feature_passes": 3}), [events.append])
    assert trainer.fit().state == "finished"
    assert trainer.stage_cache.passes == 3
    assert not [t for t in _texts(events) if "instead" in t]
