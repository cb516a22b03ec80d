"""Serving a trained run: predictors on each backend, export, Grad-CAM and the HTTP server."""

# The inference backends by name, here so the CLI can offer them without importing torch. Each
# but pytorch runs an export of the run (written, and proven, on first use): onnxruntime-int8
# and openvino-int8 are the quantised ones.
BACKENDS = ("pytorch", "onnxruntime", "onnxruntime-int8", "openvino", "openvino-int8")

# What `modelkit export --format` writes (modelkit.serving.export has the file names).
EXPORT_FORMATS = ("torchscript", "onnx", "onnx-int8", "openvino", "openvino-int8")
