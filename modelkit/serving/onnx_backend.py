"""ONNX Runtime inference behind the Predictor interface (predict, predict_many, logits).

``OnnxPredictor(run)`` preprocesses exactly like ``Predictor`` (it is one, with another forward)
and runs the run's ``export/model.onnx`` in onnxruntime on the CPU; the file is exported first
when it is missing or older than the run's best checkpoint. ``make_predictor(run, backend)``
picks the backend by name, for the CLI (``predict --backend onnxruntime``) and the app.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from modelkit.serving import BACKENDS
from modelkit.serving.gradcam import GradCamError
from modelkit.serving.predictor import Predictor


class OnnxPredictor(Predictor):
    def __init__(
        self,
        checkpoint: str | Path,
        batch_size: int = 32,
        model_path: str | Path | None = None,
        threads: int = 0,
    ):
        from modelkit.serving import export

        if importlib.util.find_spec("onnxruntime") is None:
            raise export.ExportError(
                "the onnxruntime backend needs the onnxruntime package: pip install onnxruntime"
            )
        self._load(checkpoint, batch_size)
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.channels_last = False
        if model_path is None:
            run_dir = self.checkpoint.parent.parent
            if not export.card_is_current(run_dir, "onnx"):
                export.export_run(run_dir, "onnx")
            model_path = run_dir / "export" / export.FILENAMES["onnx"]
        self.model_path = Path(model_path)
        self.session = export.onnx_session(self.model_path, threads)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits; the Predictor divides them by the run's temperature, as for PyTorch."""
        return torch.from_numpy(self.session.run(["logits"], {"images": x.numpy()})[0])

    def explain(
        self, squares: Sequence[np.ndarray], target: str | None = None, method: str = "gradcam"
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Refused: ONNX Runtime gives no gradients to weigh the feature maps with."""
        raise GradCamError(
            "Grad-CAM needs the model's gradients: use the pytorch backend to explain predictions"
        )


def make_predictor(
    checkpoint: str | Path, backend: str = "pytorch", device: str = "auto", batch_size: int = 32
) -> Predictor:
    """A Predictor for ``backend``: "pytorch" (any device) or "onnxruntime" (CPU)."""
    if backend == "onnxruntime":
        return OnnxPredictor(checkpoint, batch_size=batch_size)
    if backend != "pytorch":
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    return Predictor(checkpoint, device=device, batch_size=batch_size)
