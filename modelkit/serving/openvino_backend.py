"""OpenVINO inference behind the Predictor interface: ``predict``/``serve --backend openvino``.

``OpenVinoPredictor(run)`` preprocesses like ``Predictor`` and runs the run's OpenVINO IR (fp32,
or int8 with ``fmt="openvino-int8"``) on the CPU, exporting it first when it is missing or older
than the best checkpoint. The compiled model computes in f32 (``openvino_export.compile_model``)
so the fp32 IR answers as PyTorch does. One compiled model serves every call; a lock keeps two
threads (the server's batcher and a direct call) from sharing its infer request at once.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from modelkit.serving import openvino_export
from modelkit.serving.exported_predictor import ExportedPredictor


class OpenVinoPredictor(ExportedPredictor):
    def __init__(
        self,
        checkpoint: str | Path,
        batch_size: int = 32,
        model_path: str | Path | None = None,
        threads: int = 0,
        fmt: str = "openvino",
    ):
        openvino_export.require()
        self.fmt = fmt
        self.backend = fmt  # "openvino" | "openvino-int8"
        self.model_path = self._prepare(checkpoint, batch_size, model_path)
        self.compiled = openvino_export.compile_model(self.model_path, threads)
        self._logits = self.compiled.output("logits")
        self._lock = threading.Lock()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits; the Predictor divides them by the run's temperature, as for PyTorch."""
        with self._lock:
            out = self.compiled(x.numpy())[self._logits]
        return torch.from_numpy(out.copy())
