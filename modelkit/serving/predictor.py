"""Predictor: a checkpoint loaded once and kept warm, answering top-k for paths, bytes or images.

It preprocesses exactly as evaluation does (``square_resize`` then a centre crop), so a file
classified here gets the probabilities that evaluation recorded for it (before calibration).

A calibrated checkpoint (``modelkit.evaluation.calibration``) carries a temperature, which divides
the logits before the softmax, and an "unknown" threshold: below it a Prediction is ``unknown``
(its labels stay). ``explain=True`` adds a Grad-CAM map (``modelkit.serving.gradcam``) of the
top class, or of a chosen one, with the crop the model saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelkit.data.augment import eval_batch, normalise, to_float
from modelkit.data.imageio import ImageLoadError, ImageSource, load_image, square_resize
from modelkit.data.views import tta_views
from modelkit.device import autocast, inference_batch, pick_device, resolve_precision
from modelkit.models import registry as models
from modelkit.models.checkpoint import load_checkpoint, require_modelkit
from modelkit.models.folding import folded_copy
from modelkit.models.inference import model_from_payload
from modelkit.models.metadata import validate_metadata
from modelkit.runs.folder import RunFolder
from modelkit.serving import gradcam


@dataclass
class Prediction:
    source: str
    labels: list[str]  # best first
    probabilities: list[float]
    error: str = ""  # set, and labels empty, when the image could not be read
    unknown: bool = False  # calibrated confidence below the run's unknown threshold
    cam: np.ndarray | None = None  # Grad-CAM map (image_size x image_size, 0..1) when explained
    cam_label: str = ""  # the class the map explains
    view: np.ndarray | None = None  # the crop the model saw (uint8 RGB), for drawing the map on

    @property
    def label(self) -> str:
        return self.labels[0] if self.labels else ""

    @property
    def confidence(self) -> float:
        return self.probabilities[0] if self.probabilities else 0.0


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder means its best checkpoint (or last, if no best was written)."""
    path = Path(path)
    if path.is_dir():
        folder = RunFolder(path)
        return folder.saved_checkpoint() or folder.best
    return path


class Predictor:
    def __init__(
        self,
        checkpoint: str | Path,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = 32,
    ):
        payload = self._load(checkpoint, batch_size)
        cfg = payload["config"]
        self.device = pick_device(device)
        self.precision = _inference_precision(precision, cfg.get("precision"), self.device)
        self.channels_last = self.device.type != "mps"
        self.model = model_from_payload(payload)  # one classifier or an ensemble of them
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # predictions run on a copy with BatchNorm folded into the convolutions (a third
        # faster on a CPU); Grad-CAM keeps the model as trained
        self.folded = folded_copy(self.model)

    def _load(self, checkpoint: str | Path, batch_size: int) -> dict:
        """Read the checkpoint and what every backend needs from it: classes, preprocessing."""
        self.checkpoint = resolve_checkpoint(checkpoint)
        payload = require_modelkit(load_checkpoint(self.checkpoint), self.checkpoint)
        validate_metadata(payload, self.checkpoint)
        self.arch: str = payload["arch"]
        # an ensemble's member runs (``models.ensemble``); none for a single model
        self.members: list[str] = [str(m.get("run", "")) for m in payload.get("members") or []]
        self.classes: list[str] = list(payload["classes"])
        pre = payload["preprocess"]
        self.image_size = int(pre["image_size"])
        self.resize_size = int(pre["resize_size"])
        self.norm = models.recorded_normalisation(pre)
        self.tta = str(pre.get("tta", "none"))  # the views the run's evaluation averaged
        self.batch_size = batch_size
        cal = payload.get("calibration") or {}
        self.temperature = float(cal.get("temperature", 1.0))
        self.threshold = float(cal.get("threshold", 0.0))
        return payload

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float logits on the CPU for a normalised batch; other backends replace only this."""
        with autocast(self.device, self.precision):
            return self.folded(x).float().cpu()

    def preprocess(self, source: ImageSource) -> np.ndarray:
        img = load_image(source, min_size=self.resize_size)
        return square_resize(img, self.resize_size)

    @torch.no_grad()
    def logits(self, squares: Sequence[np.ndarray]) -> torch.Tensor:
        """Logits for preprocessed squares, in batches; the model stays loaded between calls.
        With test-time augmentation (recorded in the checkpoint) the mean over the views."""
        outs, step = [], inference_batch(self.device, self.batch_size)
        for start in range(0, len(squares), step):
            chunk = torch.from_numpy(np.stack(squares[start : start + step]))
            x = to_float(chunk.to(self.device))
            views = tta_views(x, self.image_size, self.tta)
            logits = [self._forward(normalise(v, self.channels_last, self.norm)) for v in views]
            outs.append(torch.stack(logits).mean(0))
        return torch.cat(outs) if outs else torch.zeros(0, len(self.classes))

    def crop(self, square: np.ndarray) -> np.ndarray:
        """The centre crop of a preprocessed square that the model sees (as ``eval_batch``)."""
        top = (square.shape[0] - self.image_size) // 2
        left = (square.shape[1] - self.image_size) // 2
        return square[top : top + self.image_size, left : left + self.image_size]

    def explain(
        self, squares: Sequence[np.ndarray], target: str | None = None, method: str = "gradcam"
    ) -> tuple[torch.Tensor, np.ndarray]:
        """(raw logits, Grad-CAM maps) for preprocessed squares; ``target`` is a class name to
        explain instead of each image's top class."""
        targets = None
        if target is not None:
            if target not in self.classes:
                raise gradcam.GradCamError(f"class {target!r} is not one of the model's classes")
            targets = [self.classes.index(target)] * len(squares)
        logits, maps = [], []
        for start in range(0, len(squares), self.batch_size):
            chunk = torch.from_numpy(np.stack(squares[start : start + self.batch_size]))
            x = eval_batch(chunk.to(self.device), self.image_size, self.channels_last, self.norm)
            part = targets[start : start + len(chunk)] if targets else None
            ctx = autocast(self.device, self.precision) if self.precision != "fp32" else None
            out, cams = gradcam.grad_cam(self.model, self.arch, x, part, method, ctx)
            logits.append(out)
            maps.append(cams)
        return torch.cat(logits), np.concatenate(maps)

    def predict(
        self, source: ImageSource, top_k: int = 5, explain: bool = False, target: str | None = None
    ) -> Prediction:
        return self.predict_many([source], top_k, explain=explain, target=target)[0]

    def predict_many(
        self,
        sources: Sequence[ImageSource],
        top_k: int = 5,
        names: Sequence[str] | None = None,
        explain: bool = False,
        target: str | None = None,
    ) -> list[Prediction]:
        """Classify many images in batches; an unreadable one gets an error, the rest go on.

        Probabilities are calibrated (the run's temperature); ``explain`` adds Grad-CAM maps."""
        names = list(names) if names is not None else [_name(s) for s in sources]
        results: list[Prediction | None] = [None] * len(sources)
        squares, where = [], []
        for i, source in enumerate(sources):
            try:
                squares.append(self.preprocess(source))
                where.append(i)
            except ImageLoadError as exc:
                results[i] = Prediction(names[i], [], [], error=f"{names[i]}: {exc.reason}")
        if squares:
            cams = None
            if explain:
                logits, cams = self.explain(squares, target)
                if self.tta != "none":  # the maps come from the centre view; the answer from all
                    logits = self.logits(squares)
            else:
                logits = self.logits(squares)
            answers = self.answers(logits, [names[i] for i in where], top_k)
            for row, (i, answer) in enumerate(zip(where, answers)):
                if cams is not None:
                    answer.cam, answer.view = cams[row], self.crop(squares[row])
                    answer.cam_label = target or answer.label
                results[i] = answer
        return [r for r in results if r is not None]

    def answers(self, logits: torch.Tensor, names: Sequence[str], top_k: int) -> list[Prediction]:
        """Calibrated top-k Predictions from raw logits, one per name (the run's temperature
        and unknown threshold applied): the last step of every way of predicting."""
        probs = torch.softmax(logits / self.temperature, dim=1)
        top = probs.topk(min(top_k, len(self.classes)), dim=1)
        return [
            Prediction(
                name,
                [self.classes[j] for j in top.indices[row].tolist()],
                [float(p) for p in top.values[row]],
                unknown=float(probs[row].max()) < self.threshold,
            )
            for row, name in enumerate(names)
        ]


def _inference_precision(requested: str, trained: str | None, device) -> str:
    """With "auto", use the precision the run was trained and evaluated in where this device can,
    so a prediction matches the run's recorded evaluation (bf16 and fp32 differ by ~1e-2)."""
    usable = trained in ("fp32", "bf16") or (trained == "fp16" and device.type == "cuda")
    if requested == "auto" and usable:
        requested = trained
    return resolve_precision(requested, device)


def _name(source: ImageSource) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or "<image>"
