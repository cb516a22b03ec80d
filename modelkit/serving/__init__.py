"""Serving: the Predictor, export to TorchScript/ONNX, and the ONNX Runtime backend."""
