"""The Predictor of an exported model: PyTorch's preprocessing and calibration, another forward.

Every backend but pytorch runs one of the run's exports on the CPU. They share how the export
is found (written first, and proven, when it is missing or older than the best checkpoint) and
that Grad-CAM is refused; each backend module adds only its runtime's forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from modelkit.serving.gradcam import GradCamError
from modelkit.serving.predictor import Predictor

# backend name -> export format it runs
BACKEND_FORMATS = {
    "onnxruntime": "onnx",
    "onnxruntime-int8": "onnx-int8",
    "openvino": "openvino",
    "openvino-int8": "openvino-int8",
}


class ExportedPredictor(Predictor):
    """A Predictor whose forward runs one of the run's exports (CPU, fp32 inputs)."""

    backend = ""
    fmt = ""

    def _prepare(self, checkpoint: str | Path, batch_size: int, model_path) -> Path:
        """Load the checkpoint's metadata; the export's path, written first when stale."""
        from modelkit.serving import export

        self._load(checkpoint, batch_size)
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.channels_last = False
        if model_path is None:
            run_dir = self.checkpoint.parent.parent
            if not export.card_is_current(run_dir, self.fmt):
                export.export_run(run_dir, self.fmt)
            model_path = run_dir / "export" / export.FILENAMES[self.fmt]
        return Path(model_path)

    def explain(
        self, squares: Sequence[np.ndarray], target: str | None = None, method: str = "gradcam"
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Refused: an exported graph gives no gradients to weigh the feature maps with."""
        raise GradCamError(
            "Grad-CAM needs the model's gradients: use the pytorch backend to explain predictions"
        )
