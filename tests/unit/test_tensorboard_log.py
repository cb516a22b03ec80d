"""TensorBoard event files next to metrics.jsonl, read back with tensorboard's EventAccumulator."""

from __future__ import annotations

import pytest

from modelkit.engine import Trainer
from modelkit.runs import read_metrics

pytest.importorskip("tensorboard")
from modelkit.tensorboard_log import TensorBoardLogger, read_scalars  # noqa: E402


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
