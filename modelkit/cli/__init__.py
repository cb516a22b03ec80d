"""The ``modelkit`` command: one module per subject; ``main`` catches ModelkitError once."""
