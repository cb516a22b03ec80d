"""The one error type the CLI and the pages catch.

Every error modelkit raises on purpose derives from ``ModelkitError`` and carries a message a
person can act on (naming the file, folder or setting and the problem). Each also keeps the
built-in base it had before (``ValueError``, ``RuntimeError``, ``MemoryError``), so callers that
catch those keep working.
"""

from __future__ import annotations


class ModelkitError(Exception):
    """Base of every error we raise on purpose; ``str(exc)`` is the message to show."""
