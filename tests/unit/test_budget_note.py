"""A budgeted run that ends well before its budget says why, in one sentence with the seconds
used: in its log, on the terminal's last lines and in status.json (``budget_note``), so a
60-second run of a 5-minute budget is not taken for a budget ignored."""

from __future__ import annotations

from types import SimpleNamespace

from helpers import FAST_TRAIN_FLAGS

from modelkit.cli.main import main
from modelkit.runs.folder import RunFolder, read_json
from modelkit.training.callbacks.time_budget import TimeBudget
from modelkit.training.plan import RunPlan


def _spent(seconds: float, budget: float = 300.0) -> TimeBudget:
    budget_cb = TimeBudget(budget)
    budget_cb.spent_before, budget_cb.started = seconds, budget_cb.now()
    return budget_cb


def _trainer(asked: int = 7, planned: int = 0, bad_epochs: int = 0) -> SimpleNamespace:
    plan = RunPlan(asked_epochs=asked, epochs=planned)
    return SimpleNamespace(
        monitor="val_acc", state=SimpleNamespace(bad_epochs=bad_epochs), plan=plan
    )


def test_each_early_ending_is_said_in_one_sentence_with_the_seconds_used():
    assert (
        _spent(62).ended_early(_trainer(bad_epochs=4), "early_stopping")
        == "stopped at 62 s of 300 s: validation accuracy did not improve over the last 4 epochs"
    )
    assert (
        _spent(120).ended_early(_trainer(asked=7), "completed")
        == "ended at 120 s of 300 s: the 7 epochs asked were done"
    )
    budget = _spent(200)
    budget.epoch_seconds = 70.0
    assert budget.ended_early(_trainer(asked=60, planned=5), "completed") == (
        "ended at 200 s of 300 s: the 5 planned epochs were done, and one more (70 s an epoch) "
        "would have ended past the budget"
    )
    budget = _spent(40)
    budget.stop_why = "the epoch under way would end past the budget"
    assert budget.ended_early(_trainer(), "time_budget") == (
        "stopped at 40 s of 300 s: the epoch under way would end past the budget"
    )


def test_a_run_that_used_most_of_its_budget_needs_no_explaining():
    assert _spent(280).ended_early(_trainer(bad_epochs=4), "early_stopping") == ""


def test_the_terminal_the_log_and_the_status_say_why_a_run_ended_early(
    capsys, image_dataset, tmp_path
):
    code = main(
        [
            "train", str(image_dataset), *FAST_TRAIN_FLAGS, "--epochs", "2",
            "--time-budget", "10m", "--runs-dir", str(tmp_path / "runs"),
        ]
    )  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err.strip().splitlines()
    note = next(line for line in err if line.startswith("ended at "))
    assert note.endswith(" s of 600 s: the 2 epochs asked were done"), note
    assert err.index(note) >= len(err) - 4  # among the last lines, before the summary
    (run,) = (tmp_path / "runs").iterdir()
    folder = RunFolder(run)
    status = read_json(folder.status)
    assert status["state"] == "finished" and status["budget_note"] == note
    assert note in folder.log.read_text(encoding="utf-8")
