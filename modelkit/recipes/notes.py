"""What a recipe chose and why, written into the run's log as the run starts."""

from __future__ import annotations

from typing import Any


def notes_callback(lines: list[str]) -> Any:
    """A training callback that writes what a recipe chose and why into the run's log, one
    line each, as the run starts: the run folder says why it was trained the way it was."""
    from modelkit.events import Message
    from modelkit.training.callbacks.base import Callback  # late: the training stack is heavy

    class RecipeNotes(Callback):
        main_only = True

        def setup(self, trainer: Any) -> None:
            for line in lines:
                trainer.emit(Message(line))

    return RecipeNotes()
