"""TensorBoard event files next to metrics.jsonl, read back with tensorboard's EventAccumulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelkit.runs.store import read_metrics
from modelkit.training.loop import Trainer

pytest.importorskip("tensorboard")
from modelkit.training.tensorboard_log import TensorBoardLogger  # noqa: E402


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run's TensorBoard files: {tag: [(step, value), ...]}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # The whole folder at once, as TensorBoard reads it, so a resumed run's purge applies.
    acc = EventAccumulator(str(Path(run_dir) / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_a_run_writes_its_scalars_for_tensorboard(make_config):
    result = Trainer(make_config(epochs=2)).fit()
    assert list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    scalars = read_scalars(result.run_dir)
    rows = read_metrics(result.run_dir)
    for key in ("train_loss", "val_acc", "lr"):
        assert [s for s, _ in scalars[f"epoch/{key}"]] == [1, 2]
        assert [v for _, v in scalars[f"epoch/{key}"]] == pytest.approx([r[key] for r in rows])
    assert [s for s, _ in scalars["batch/loss"]] == [1, 2, 3, 4, 5, 6]
    assert "batch/lr" in scalars


def test_it_can_be_turned_off(make_config):
    result = Trainer(make_config(epochs=1, tensorboard=False)).fit()
    assert not (result.run_dir / "tensorboard").exists()


def test_a_broken_writer_turns_the_logger_off_without_failing():
    logger = TensorBoardLogger()

    class Broken:
        def add_scalar(self, *args):
            raise OSError("disk full")

        def close(self):
            pass

    from modelkit.events import BatchEnd

    logger.writer = Broken()
    logger(BatchEnd(0, 0, 1, 1.0, 0.1, 10.0, 1))
    assert logger.broken and logger.writer is None


def test_a_resumed_run_replaces_what_a_killed_one_logged_past_its_checkpoint(make_config):
    from torch.utils.tensorboard import SummaryWriter

    from modelkit.events import EpochEnd

    trainer = None

    def stop_after_first_epoch(event):
        if isinstance(event, EpochEnd) and event.epoch == 0:
            trainer.stop()

    trainer = Trainer(make_config(epochs=2), [stop_after_first_epoch])
    run_dir = trainer.fit().run_dir  # last.pt holds epoch 1: steps 1..3
    # What a process killed during epoch 2 leaves: batch losses past the checkpoint.
    with SummaryWriter(str(run_dir / "tensorboard")) as stale:
        for step in (4, 5):
            stale.add_scalar("batch/loss", 99.0, step)
    Trainer.resume(run_dir).fit()
    losses = read_scalars(run_dir)["batch/loss"]
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5, 6]
    assert 99.0 not in [v for _, v in losses]
    assert [s for s, _ in read_scalars(run_dir)["epoch/train_loss"]] == [1, 2]
