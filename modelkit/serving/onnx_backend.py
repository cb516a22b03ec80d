"""ONNX Runtime inference behind the Predictor interface (predict, predict_many, logits).

``OnnxPredictor(run)`` preprocesses exactly like ``Predictor`` (it is one, with another forward)
and runs the run's ``export/model.onnx`` (or, with ``fmt="onnx-int8"``, its int8 model) in
onnxruntime on the CPU; the file is exported first when it is missing or older than the run's
best checkpoint. ``make_predictor(run, backend)`` picks the backend by name, for the CLI
(``predict --backend onnxruntime``), the server and the app.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from modelkit.serving import BACKENDS
from modelkit.serving.exported_predictor import BACKEND_FORMATS, ExportedPredictor
from modelkit.serving.predictor import Predictor


class OnnxPredictor(ExportedPredictor):
    backend = "onnxruntime"

    def __init__(
        self,
        checkpoint: str | Path,
        batch_size: int = 32,
        model_path: str | Path | None = None,
        threads: int = 0,
        fmt: str = "onnx",
    ):
        from modelkit.serving import export

        if importlib.util.find_spec("onnxruntime") is None:
            raise export.ExportError(
                "the onnxruntime backend needs the onnxruntime package: pip install onnxruntime"
            )
        self.fmt = fmt
        self.backend = "onnxruntime-int8" if fmt == "onnx-int8" else "onnxruntime"
        self.model_path = self._prepare(checkpoint, batch_size, model_path)
        self.session = export.onnx_session(self.model_path, threads)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits; the Predictor divides them by the run's temperature, as for PyTorch."""
        return torch.from_numpy(self.session.run(["logits"], {"images": x.numpy()})[0])


def make_predictor(
    checkpoint: str | Path, backend: str = "pytorch", device: str = "auto", batch_size: int = 32
) -> Predictor:
    """A Predictor for ``backend`` (one of BACKENDS): "pytorch" runs on any device, the others
    run the run's exports on the CPU."""
    if backend in ("onnxruntime", "onnxruntime-int8"):
        return OnnxPredictor(checkpoint, batch_size=batch_size, fmt=BACKEND_FORMATS[backend])
    if backend in ("openvino", "openvino-int8"):
        from modelkit.serving.openvino_backend import OpenVinoPredictor

        return OpenVinoPredictor(checkpoint, batch_size=batch_size, fmt=BACKEND_FORMATS[backend])
    if backend != "pytorch":
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    return Predictor(checkpoint, device=device, batch_size=batch_size)
