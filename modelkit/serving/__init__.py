"""Serving a trained run: predictors on each backend, export, Grad-CAM and the HTTP server."""

# The inference backends by name, here so the CLI can offer them without importing torch.
BACKENDS = ("pytorch", "onnxruntime")
