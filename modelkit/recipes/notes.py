"""What a recipe chose and why, written into the run's log as the run starts."""

from __future__ import annotations

from typing import Any


def notes_callback(lines: list[str], search: dict[str, Any] | None = None) -> Any:
    """A training callback that writes what a recipe chose and why into the run's log, one
    line each, as the run starts: the run folder says why it was trained the way it was.
    ``search``: what ``auto`` measured to choose, kept as auto_search.json beside the config."""
    from modelkit.atomic import atomic_write_json
    from modelkit.events import Message
    from modelkit.training.callbacks.base import Callback  # late: the training stack is heavy

    class RecipeNotes(Callback):
        main_only = True

        def setup(self, trainer: Any) -> None:
            if search is not None and trainer.run_dir is not None:
                atomic_write_json(trainer.run_folder.auto_search, search)
            for line in lines:
                trainer.emit(Message(line))

    return RecipeNotes()
