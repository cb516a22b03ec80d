"""Models: the architecture registry, starting weights, heads, freezing, and checkpoints."""
