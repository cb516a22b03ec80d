"""Trainer: the training loop, and nothing but the loop.

It scans the data, decodes it once, trains with mixed precision and the chosen schedule, writes
checkpoints atomically and reports everything as events. Listeners (the run folder, the app, the
CLI, tests) decide what to do with them; the loop never knows who is watching.
"""

from __future__ import annotations

import errno
import json
import math
import random
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from modelkit.config import TrainConfig
from modelkit.data.augment import AugmentSettings, eval_batch, train_batch
from modelkit.data.cache import ImageCache
from modelkit.data.imageio import resize_size_for
from modelkit.data.scan import DatasetError, Sample, scan_dataset
from modelkit.device import autocast, pick_device, resolve_precision
from modelkit.errors import ModelkitError
from modelkit.evaluation.metrics import evaluate_logits, save_evaluation, topk_accuracy
from modelkit.events import (
    BatchEnd,
    CacheProgress,
    CheckpointSaved,
    EpochEnd,
    Event,
    Failed,
    Finished,
    ListenerFn,
    Message,
    RunStarted,
    Stopped,
)
from modelkit.models import registry as models
from modelkit.models.checkpoint import (
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
)
from modelkit.runs.store import RunRecorder, RunStore, read_json
from modelkit.training import distributed, phases, tensorboard_log
from modelkit.training.features import backbone_features, has_augmentation


class TrainingError(ModelkitError, RuntimeError):
    """Training could not go on; the message says why in words a person can act on."""


class _StopRequested(Exception):
    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch


@dataclass
class TrainResult:
    run_dir: Path
    state: str  # finished | stopped
    best: dict[str, Any]
    last: dict[str, Any]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def explain_error(exc: BaseException) -> str:
    """Turn the errors people actually hit into advice."""
    if isinstance(exc, (TrainingError, DatasetError)):
        return str(exc)  # ours already say what to do; no class-name prefix
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return (
            f"out of memory ({str(exc).splitlines()[0][:200]}); "
            "try a smaller batch size or image size"
        )
    if isinstance(exc, MemoryError):
        detail = f" ({exc})" if str(exc) else ""
        return f"out of memory{detail}; try a smaller batch size or image size"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"the disk is full ({exc.filename or ''}); free some space and resume the run"
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return f"cannot write to {exc.filename or 'the runs folder'}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.errno is None:
        return str(exc)  # ours (e.g. RunStore.create) already name the folder and the reason
    return f"{type(exc).__name__}: {exc}"


class Trainer:
    """Train one run. ``Trainer(config).fit()`` starts a new run; ``Trainer.resume(run_dir)``
    continues one from its ``last.pt`` exactly as if it had never stopped."""

    def __init__(
        self,
        config: TrainConfig,
        listeners: Iterable[ListenerFn] = (),
        *,
        run_dir: str | Path | None = None,
    ):
        self.config = config
        self.listeners = list(listeners)
        self.run_dir = Path(run_dir) if run_dir else None
        self.stop_event = threading.Event()

    @classmethod
    def resume(cls, run_dir: str | Path, listeners: Iterable[ListenerFn] = ()) -> Trainer:
        run_dir = Path(run_dir)
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise TrainingError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        config = TrainConfig.load(run_dir / "config.json")
        return cls(config, listeners, run_dir=run_dir)

    # -- events ---------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    def _emit_quietly(self, event: Event) -> None:
        """Final events must reach every listener even if one of them fails (disk full)."""
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken listener must not hide the real error
                pass

    def stop(self) -> None:
        """Ask the loop to stop; it does so before the next batch."""
        self.stop_event.set()

    # -- the run --------------------------------------------------------------------------------
    def fit(self, stop_event: threading.Event | None = None) -> TrainResult:
        if stop_event is not None:
            self.stop_event = stop_event
        cfg = self.config
        resuming = self.run_dir is not None
        self.dist = distributed.init_from_env(pick_device(cfg.device), cfg.batch_size)
        self.device = self.dist.device  # cuda:LOCAL_RANK under torchrun on GPUs
        self.precision = resolve_precision(cfg.precision, self.device)
        self._prepare_data(resuming)
        self._build_model()
        if not resuming and self.dist.is_main:  # rank 0 writes; the others get its folder
            try:  # an unwritable or full runs folder: one clear message, not a traceback
                self.run_dir = RunStore(cfg.runs_dir).create(cfg.arch, cfg.run_name)
                atomic_write_json(self.run_dir / "config.json", cfg.to_dict())
                atomic_write_json(self.run_dir / "classes.json", self.classes)
                atomic_write_json(
                    self.run_dir / "splits.json",
                    {s: [[x.path, x.label] for x in v] for s, v in self.splits.items()},
                )
            except OSError as exc:
                raise TrainingError(explain_error(exc)) from exc
        self.run_dir = self.dist.broadcast(self.run_dir)
        assert self.run_dir is not None
        if self.dist.is_main:
            self.listeners.insert(0, RunRecorder(self.run_dir))
            if cfg.tensorboard and tensorboard_log.available():
                self.listeners.insert(1, tensorboard_log.TensorBoardLogger())
        else:
            self.listeners = []  # only rank 0 records, prints and reports
        try:
            return self._run(resuming)
        except _StopRequested as stop:
            self._emit_quietly(Stopped(str(self.run_dir), stop.epoch, stop.batch))
            return TrainResult(self.run_dir, "stopped", self.best_metrics, self.last_metrics)
        except Exception as exc:
            message = explain_error(exc)
            self._emit_quietly(Failed(str(self.run_dir), message, traceback.format_exc()))
            raise TrainingError(message) from exc
        finally:
            self.dist.close()

    def _prepare_data(self, resuming: bool) -> None:
        cfg = self.config
        if resuming:
            assert self.run_dir is not None
            self.classes = read_json(self.run_dir / "classes.json")
            raw = read_json(self.run_dir / "splits.json")
            if not isinstance(self.classes, list) or not isinstance(raw, dict):
                raise TrainingError(f"{self.run_dir}: classes.json or splits.json is unreadable")
            self.splits = {s: [Sample(p, int(y)) for p, y in v] for s, v in raw.items()}
        else:
            index = scan_dataset(cfg.data_dir, cfg.val_ratio, cfg.test_ratio, cfg.seed)
            self.classes = index.classes
            self.splits = {s: v for s, v in index.splits.items() if v}
            if len(self.classes) < 2:
                raise DatasetError(f"{cfg.data_dir}: need at least 2 classes to train a classifier")
            if not self.splits.get("train"):
                raise DatasetError(f"{cfg.data_dir}: no training images found")

    def _build_model(self) -> None:
        cfg = self.config
        _seed_everything(cfg.seed)
        self.model = models.build_model(
            cfg.arch, len(self.classes), cfg.head, cfg.head_hidden, cfg.head_dropout
        )
        if self.run_dir is None:  # resuming loads every weight from last.pt instead
            self.weights_source = models.load_starting_weights(self.model, cfg.arch, cfg.weights)
        else:
            self.weights_source = "resumed from last.pt"
        models.set_backbone_trainable(self.model, cfg.arch, not cfg.freeze_backbone)
        self.model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if cfg.compile else self.model

    def _build_cache(self) -> None:
        cfg = self.config
        order = [(s, i) for s in self.splits for i in range(len(self.splits[s]))]
        paths = [self.splits[s][i].path for s, i in order]

        def progress(done: int, total: int) -> None:
            self.emit(CacheProgress(done, total))

        self.cache = ImageCache(
            paths,
            resize_size_for(cfg.image_size),
            cfg.cache_ram_mb,
            progress=progress,
            should_stop=self.stop_event.is_set,
        )
        if self.stop_event.is_set():
            raise _StopRequested(0, 0)
        for path, reason in self.cache.errors:
            self.emit(Message(f"skipped {path}: {reason}", "warning"))
        self.rows: dict[str, np.ndarray] = {}
        self.labels: dict[str, torch.Tensor] = {}
        for split in self.splits:
            rows = [k for k, (s, i) in enumerate(order) if s == split and self.cache.valid[k]]
            keep = [order[k][1] for k in rows]
            self.rows[split] = np.asarray(rows, dtype=np.int64)
            self.labels[split] = torch.tensor([self.splits[split][i].label for i in keep])
        self.paths = {s: [self.cache.paths[k] for k in self.rows[s]] for s in self.splits}
        if len(self.rows["train"]) == 0:
            raise DatasetError("no readable training images (every file failed to decode)")

    def _steps_per_epoch(self, n: int) -> int:
        bs = self.config.batch_size
        steps = math.ceil(n / bs)
        if steps > 1 and 0 < n % bs < self.dist.min_last_batch():
            steps -= 1  # a batch of one breaks BatchNorm; its image is seen next epoch
        return steps

    def _make_optimisation(self, steps_per_epoch: int) -> None:
        cfg = self.config
        lr, backbone_lr = phases.rates(cfg, self.phase)
        groups = models.parameter_groups(self.model, cfg.arch, lr, backbone_lr, cfg.weight_decay)
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
        elif cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(groups, lr=cfg.lr)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
        opt = self.optimizer
        sched = None
        if cfg.scheduler == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, cfg.step_size, cfg.gamma)
        elif cfg.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=phases.span(cfg, self.phase)
            )
        elif cfg.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=[g["lr"] for g in opt.param_groups],
                epochs=phases.span(cfg, self.phase),
                steps_per_epoch=steps_per_epoch,
            )
        elif cfg.scheduler == "plateau":
            # the watched value, not cfg.monitor: without a val split it is train_loss
            mode = "max" if self._monitor_key() == "val_acc" else "min"
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode=mode, factor=cfg.gamma, patience=cfg.plateau_patience
            )
        self.scheduler = sched
        use_scaler = self.precision == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def _enter_phase(self, phase: int) -> None:
        """Two-phase runs: phase 1 freezes the backbone, phase 2 unfreezes it (phases.py)."""
        self.phase = phase
        if phase:
            models.set_backbone_trainable(self.model, self.config.arch, phase == 2)

    def _switch_phase_if_due(self, epoch: int) -> None:
        """After the last head-only epoch: unfreeze and start a new optimizer and schedule.

        Done before the epoch's checkpoint is written, so last.pt holds phase 2's fresh optimizer
        and a run resumed at the boundary continues exactly like an uninterrupted one."""
        cfg = self.config
        if not self.phase or phases.phase_of(cfg, epoch + 1) == self.phase:
            return
        self._enter_phase(phases.phase_of(cfg, epoch + 1))
        self.features = None  # the backbone trains now: its cached features are stale
        self._make_optimisation(self._steps_per_epoch(len(self.rows["train"])))
        self.bad_epochs = 0  # phase 2 gets its full early-stopping patience
        head_lr, backbone_lr = phases.rates(cfg, self.phase)
        self.emit(
            Message(
                f"phase 2: backbone unfrozen, fine-tuning at lr {head_lr:g} (head) and "
                f"{backbone_lr:g} (backbone)"
            )
        )

    def _run(self, resuming: bool) -> TrainResult:
        cfg = self.config
        n_train = len(self.splits["train"])
        self.best_metrics: dict[str, Any] = {}
        self.last_metrics: dict[str, Any] = {}
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.start_epoch, self.global_step = 0, 0
        self.best_value: float | None = None
        self.bad_epochs = 0
        self.history: list[dict[str, Any]] = []
        # Read last.pt up front so RunStarted already says which epoch the run continues from.
        payload = load_checkpoint(self.run_dir / "checkpoints" / "last.pt") if resuming else None
        self.emit(
            RunStarted(
                run_dir=str(self.run_dir),
                config=cfg.to_dict(),
                classes=list(self.classes),
                device=str(self.device),
                precision=self.precision,
                num_train=n_train,
                num_val=len(self.splits.get("val", [])),
                start_epoch=int(payload["epoch"]) if payload else 0,
                steps_per_epoch=self._steps_per_epoch(n_train),
                start_step=int(payload.get("global_step", 0)) if payload else 0,
            )
        )
        if not resuming:
            self.emit(Message(f"starting from {self.weights_source}"))
        if self.dist.enabled:
            self.emit(Message(self.dist.describe(cfg.batch_size)))
        self._build_cache()
        self._enter_phase(phases.phase_of(cfg, int(payload["epoch"]) if payload else 0))
        self._make_optimisation(self._steps_per_epoch(len(self.rows["train"])))
        if payload is not None:
            self._restore(payload)
        self._build_features()
        reason = "completed"
        for epoch in range(self.start_epoch, cfg.epochs):
            metrics = self._train_epoch(epoch)
            if len(self.rows.get("val", [])) and self.dist.is_main:
                logits, labels = self._predict("val")
                metrics.update(self._val_metrics(logits, labels))
            metrics = self.dist.broadcast(metrics)  # every rank decides on rank 0's numbers
            metrics["lr"] = self._current_lr()
            if self.phase:
                metrics["phase"] = self.phase
            self._step_epoch_scheduler(metrics)
            improved = self._update_best(metrics)
            self.history.append({"epoch": epoch + 1, **metrics})
            self._switch_phase_if_due(epoch)
            if self.dist.is_main:
                self._save_checkpoints(epoch, metrics, improved)
            self.last_metrics = {"epoch": epoch + 1, **metrics}
            self.emit(EpochEnd(epoch, cfg.epochs, metrics, improved))
            patience = cfg.early_stopping_patience if self.phase != 1 else 0
            if patience and self.bad_epochs >= patience:
                reason = "early_stopping"
                self.emit(
                    Message(
                        f"early stopping: {self._monitor_key()} did not improve for "
                        f"{self.bad_epochs} epochs"
                    )
                )
                break
        if self.dist.is_main:
            self._final_evaluation()
        self.emit(Finished(str(self.run_dir), self.best_metrics, self.last_metrics, reason))
        return TrainResult(self.run_dir, "finished", self.best_metrics, self.last_metrics)

    def _build_features(self) -> None:
        """Frozen backbone: its features per image (per augmentation pass) computed once here.

        Also for the head-only phase of a two-phase run (dropped when phase 2 unfreezes the
        backbone): its head epochs then cost almost nothing instead of a forward pass each. The
        evaluation splits' features are computed here; augmentation pass k of the training split
        when epoch k first needs it (``_train_features``), so the first epoch ends after one
        pass, not all of them. The passes draw from their own generator, seeded from the config
        and always computed in order, so a resumed run recomputes exactly the features the
        interrupted one trained on."""
        cfg = self.config
        self.features: dict[str, list[torch.Tensor]] | None = None
        frozen = cfg.freeze_backbone or self.phase == 1
        if not (frozen and cfg.feature_cache) or cfg.compile or self.dist.enabled:
            return
        settings = AugmentSettings.from_config(cfg)
        frozen_epochs = cfg.epochs if cfg.freeze_backbone else cfg.head_epochs
        passes = min(cfg.feature_passes, frozen_epochs) if has_augmentation(settings) else 1
        generator = torch.Generator().manual_seed(cfg.seed + 1)
        eval_splits = [s for s in ("val", "test") if len(self.rows.get(s, []))]
        # progress covers what is computed before the first epoch: the eval splits and the
        # passes up to the one it trains on (one pass, unless resuming a later epoch)
        first = self.start_epoch % passes + 1
        total = first * len(self.rows["train"]) + sum(len(self.rows[s]) for s in eval_splits)
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            self.emit(CacheProgress(done, total, "features"))

        def compute(split: str, augment, epoch: int) -> torch.Tensor:
            report = progress if epoch == self.start_epoch else None
            feats = backbone_features(
                self.model, cfg.arch, self.cache, self.rows[split], cfg.image_size,
                self.device, self.precision, cfg.channels_last, max(cfg.batch_size, 64),
                augment, self.stop_event.is_set, report,
            )  # fmt: skip
            if feats is None:
                raise _StopRequested(epoch, 0)
            return feats

        # Train features go through the training transform even without random augmentation,
        # so they are exactly what the full loop would feed the backbone.
        self._feature_passes = passes
        self._compute_train_features = lambda epoch: compute("train", (settings, generator), epoch)
        self.features = {"train": []}
        for split in eval_splits:
            self.features[split] = [compute(split, None, self.start_epoch)]
        self._train_features(self.start_epoch)  # before the first epoch, with progress
        self.emit(
            Message(
                f"frozen backbone: features cached for {passes} augmentation pass"
                f"{'es' if passes > 1 else ''} (each computed once); the head trains on them"
            )
        )

    def _train_features(self, epoch: int) -> torch.Tensor:
        """The cached training features epoch ``epoch`` trains on (pass epoch % passes)."""
        assert self.features is not None
        train, want = self.features["train"], epoch % self._feature_passes
        while len(train) <= want:  # in order: pass k continues the generator of pass k - 1
            train.append(self._compute_train_features(epoch))
        return train[want]

    # -- one epoch ------------------------------------------------------------------------------
    def _forward_train(self, epoch: int, rows: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        cfg = self.config
        if self.features is not None:
            feats = self._train_features(epoch)
            return self.head(feats[torch.from_numpy(idx).to(feats.device)])
        x = self.cache.batch(rows[idx]).to(self.device, non_blocking=True)
        x = train_batch(
            x, cfg.image_size, self.augment, self.generator, cfg.channels_last, self.batch_part,
            models.normalisation(cfg.arch),
        )  # fmt: skip
        with autocast(self.device, self.precision):
            return self.train_forward(x)

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        cfg = self.config
        self.model.train()
        if cfg.freeze_backbone or self.phase == 1:
            models.freeze_batchnorm(self.model, cfg.arch)
        self.head = models.head_module(self.model, cfg.arch)
        self.augment = AugmentSettings.from_config(cfg)
        rows, labels = self.rows["train"], self.labels["train"]
        n = len(rows)
        steps = self._steps_per_epoch(n)
        order = torch.randperm(n, generator=self.generator)  # the same on every rank
        if self.dist.enabled:  # DDP, built again when the trainable parameters change
            self.train_forward = self.dist.wrap(self.model, cfg.compile)
        else:
            self.train_forward = self.forward
        total_loss, correct, seen = 0.0, 0, 0
        started = time.perf_counter()
        for b in range(steps):
            if self.dist.any(self.stop_event.is_set()):
                raise _StopRequested(epoch, b)
            batch = order[b * cfg.batch_size : (b + 1) * cfg.batch_size].numpy()
            idx, self.batch_part = self.dist.shard(batch)  # this process's part of the batch
            out = self._forward_train(epoch, rows, idx)
            y = labels[idx].to(self.device, non_blocking=True)
            loss = self.criterion(out.float(), y) * self.dist.loss_weight(len(idx), len(batch))
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                if cfg.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
            if isinstance(self.scheduler, torch.optim.lr_scheduler.OneCycleLR):
                self.scheduler.step()
            batch_loss = self.dist.mean(float(loss.detach()))  # the global batch's mean loss
            if not math.isfinite(batch_loss):
                raise TrainingError(
                    f"the loss became {batch_loss} in epoch {epoch + 1}; "
                    "lower the learning rate or turn on gradient clipping"
                )
            k = len(batch)
            total_loss += batch_loss * k
            correct += int((out.detach().argmax(1) == y).sum())
            seen += k
            self.global_step += 1
            elapsed = time.perf_counter() - started
            self.emit(
                BatchEnd(
                    epoch,
                    b,
                    steps,
                    batch_loss,
                    self._current_lr(),
                    seen / elapsed,
                    self.global_step,
                )
            )
        seconds = time.perf_counter() - started
        correct = int(self.dist.all_reduce_sum(correct)[0])  # seen and losses are global already
        return {
            "train_loss": total_loss / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "epoch_seconds": seconds,
            "images_per_second": seen / seconds if seconds > 0 else 0.0,
        }

    @torch.no_grad()
    def _predict(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        self.model.eval()
        if self.features is not None and split in self.features:
            head = models.head_module(self.model, cfg.arch)
            return head(self.features[split][0]).float().cpu(), self.labels[split]
        rows = self.rows[split]
        outs = []
        bs = max(cfg.batch_size * 2, 1)
        for start in range(0, len(rows), bs):
            x = self.cache.batch(rows[start : start + bs]).to(self.device, non_blocking=True)
            x = eval_batch(x, cfg.image_size, cfg.channels_last, models.normalisation(cfg.arch))
            with autocast(self.device, self.precision):
                outs.append(self.forward(x).float().cpu())
        logits = torch.cat(outs) if outs else torch.zeros(0, len(self.classes))
        return logits, self.labels[split]

    def _val_metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        loss = float(nn.functional.cross_entropy(logits, labels)) if len(labels) else 0.0
        metrics = {"val_loss": loss, "val_acc": topk_accuracy(logits, labels, 1)}
        if len(self.classes) >= 5:
            metrics["val_top5"] = topk_accuracy(logits, labels, 5)
        return metrics

    def _current_lr(self) -> float:
        groups = self.optimizer.param_groups
        head = [g for g in groups if str(g.get("name", "")).startswith("head")]
        return float((head or groups)[0]["lr"])

    def _monitor_key(self) -> str:
        has_val = len(self.rows.get("val", [])) > 0
        if not has_val:
            return "train_loss"
        return self.config.monitor

    def _step_epoch_scheduler(self, metrics: dict[str, Any]) -> None:
        s = self.scheduler
        if s is None or isinstance(s, torch.optim.lr_scheduler.OneCycleLR):
            return
        if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
            s.step(metrics[self._monitor_key()])
        else:
            s.step()

    def _update_best(self, metrics: dict[str, Any]) -> bool:
        key = self._monitor_key()
        value = float(metrics[key])
        better = (
            self.best_value is None
            or (key == "val_acc" and value > self.best_value)
            or (key != "val_acc" and value < self.best_value)
        )
        if better:
            self.best_value, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        return better

    # -- checkpoints ----------------------------------------------------------------------------
    def _payload(self, epoch: int, metrics: dict[str, Any], with_training_state: bool) -> dict:
        cfg = self.config
        payload: dict[str, Any] = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "arch": cfg.arch,
            "classes": list(self.classes),
            "config": cfg.to_dict(),
            "preprocess": models.preprocessing(cfg.image_size, cfg.arch),
            "epoch": epoch + 1,
            "metrics": metrics,
        }
        if with_training_state:
            payload.update(
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict() if self.scheduler else None,
                scaler=self.scaler.state_dict() if self.scaler else None,
                rng={
                    "torch": torch.get_rng_state(),
                    "data": self.generator.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                },
                best_value=self.best_value,
                bad_epochs=self.bad_epochs,
                best_metrics=self.best_metrics,
                global_step=self.global_step,
                history=self.history,
            )
        return payload

    def _save_checkpoints(self, epoch: int, metrics: dict[str, Any], improved: bool) -> None:
        folder = self.run_dir / "checkpoints"
        if improved:
            self.best_metrics = {"epoch": epoch + 1, **metrics}
            save_checkpoint(folder / "best.pt", self._payload(epoch, metrics, False))
            self.emit(CheckpointSaved(str(folder / "best.pt"), epoch, "best"))
        save_checkpoint(folder / "last.pt", self._payload(epoch, metrics, True))
        self.emit(CheckpointSaved(str(folder / "last.pt"), epoch, "last"))

    def _restore(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None and payload.get("scheduler"):
            self.scheduler.load_state_dict(payload["scheduler"])
        if self.scaler is not None and payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        rng = payload["rng"]
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["data"])
        if rng.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.start_epoch = int(payload["epoch"])
        self.best_value = payload.get("best_value")
        self.bad_epochs = int(payload.get("bad_epochs", 0))
        self.best_metrics = payload.get("best_metrics") or {}
        self.global_step = int(payload.get("global_step", 0))
        self.history = list(payload.get("history") or [])
        self.last_metrics = self.history[-1] if self.history else {}
        # metrics.jsonl may hold an epoch written after this checkpoint, or miss one: rebuild it
        # from the checkpoint's history so the curves match the weights we continue from.
        lines = "".join(json.dumps(row) + "\n" for row in self.history)
        if self.dist.is_main:
            atomic_write_text(self.run_dir / "metrics.jsonl", lines)
        self.emit(Message(f"resumed from last.pt after epoch {self.start_epoch}"))

    def _final_evaluation(self) -> None:
        """Evaluate the best weights on val (and test) and save what the Evaluate page shows."""
        best = self.run_dir / "checkpoints" / "best.pt"
        if best.is_file():
            self.model.load_state_dict(load_checkpoint(best)["model"])
        for split in ("val", "test"):
            if len(self.rows.get(split, [])) == 0:
                continue
            logits, labels = self._predict(split)
            ev = evaluate_logits(logits, labels, self.classes, self.paths[split], split)
            save_evaluation(self.run_dir, ev)
            self.emit(Message(f"{split} accuracy of the best weights: {ev.accuracy:.3f}"))
