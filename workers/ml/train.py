"""fit(): the generic training run (Lightning) for any task with a code half in workers.ml.tasks.

Takes a resolved config, prepared samples (TaskCode.prepare), an output folder, a
`report(event)` callable and a `should_stop()` callable; knows nothing about the database and
names no task: the task's code half builds the module and the datasets. Writes `best.ckpt` and
`last.ckpt` atomically; `last` carries the trainer state (loops, optimizer, scheduler, callback
state) so `resume_from` continues where it left off, also with a raised epoch count.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import lightning as L  # noqa: N812 - the library's own convention
import torch
from lightning.pytorch.callbacks import Callback

from app.catalog import get_model
from app.catalog.weights import WeightLocations, find_weights, require_weights, weights_record
from app.tasks import get_task
from workers.ml.checkpoints import load_checkpoint, save_checkpoint
from workers.ml.tasks import get_task_code
from workers.ml.tasks.base import Prepared
from workers.ml.transforms import preprocess_spec

logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
logging.getLogger("lightning.fabric").setLevel(logging.WARNING)

Report = Callable[[dict[str, Any]], None]


def better(
    score: float | None,
    loss: float | None,
    best_score: float | None = None,
    best_loss: float | None = None,
) -> bool:
    """Whether an epoch beats the best so far (scores: higher is better). A tie on a small
    validation set (accuracy moves in steps of 1/n) goes to the lower validation loss: the
    better-fitted later epoch, not the first lucky one."""
    if score is None:
        return False
    if best_score is None or score > best_score:
        return True
    return score == best_score and loss is not None and (best_loss is None or loss < best_loss)


class StopRequested(Exception):
    """Raised by the callback once the stop checkpoint is written; fit() returns "stopped"."""


@dataclass
class FitRequest:
    task: str
    config: dict[str, Any]  # the task's TrainConfig.model_dump() with image_size resolved
    classes: list[str]
    prepared: Prepared  # TaskCode.prepare's samples (train, val) with targets, and task facts
    out_dir: Path
    # MetricPoint key that picks the best checkpoint ("val/acc") and its direction; empty: the
    # task's own (app.tasks TaskSpec).
    primary_metric: str = ""
    metric_mode: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    resume_from: Path | None = None


@dataclass
class FitResult:
    status: str  # completed | stopped
    epochs_done: int
    global_step: int
    best: dict[str, Any] | None
    last: dict[str, Any] | None
    history: list[dict[str, Any]]
    weights: str
    provenance: dict[str, Any]
    notes: list[str]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@functools.cache
def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("torch", "torchvision", "lightning", "numpy", "pillow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    versions["python"] = platform.python_version()
    return dict(versions)


@functools.cache
def packages_hash() -> str:
    """SHA-256 over the sorted name==version list of installed distributions."""
    lines = sorted(f"{dist.metadata['Name']}=={dist.version}" for dist in metadata.distributions())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def oom_policy(batch_size: int, accumulate: int) -> tuple[int, int] | None:
    """After CUDA out-of-memory: halve the batch and double accumulation (same effective batch);
    None when the batch is already 1 (give up)."""
    if batch_size <= 1:
        return None
    return max(1, batch_size // 2), accumulate * 2


def cpu_threads() -> int:
    """Intra-op threads on CPU: half the cores. On a small shared box (2 cores) one thread is
    several times faster than two fighting other processes for the same cores."""
    return max(1, (os.cpu_count() or 1) // 2)


def fit_within_memory(
    request: FitRequest,
    report: Callable[[dict[str, Any]], None] | None,
    should_stop: Callable[[], bool] | None,
    shrunk: Callable[[dict[str, Any], str], Path | None],
) -> tuple[FitResult, list[str]]:
    """`fit`, and on CUDA out-of-memory the same run again with half the batch and twice the
    gradient accumulation (the same effective batch) until it fits or the batch is 1.
    `shrunk(config, note)` keeps the new config where the caller keeps it and returns the
    checkpoint to resume from (None: start over). Returns the result and the notes said."""
    notes: list[str] = []
    while True:
        try:
            return fit(request, report, should_stop), notes
        except torch.cuda.OutOfMemoryError:
            config = request.config
            changed = oom_policy(int(config["batch_size"]), int(config["accumulate_grad_batches"]))
            if changed is None:
                raise RuntimeError(
                    "CUDA out of memory even at batch size 1; choose a smaller model or image size"
                ) from None
            torch.cuda.empty_cache()
            config = {**config, "batch_size": changed[0], "accumulate_grad_batches": changed[1]}
            note = (
                f"CUDA out of memory: batch size now {changed[0]}, gradient accumulation "
                f"{changed[1]} (same effective batch); resuming from the last checkpoint."
            )
            notes.append(note)
            resume = shrunk(config, note)
            request = replace(request, config=config, resume_from=resume)


def resolve_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class StudioCallback(Callback):
    """Reports steps (throttled) and epochs, writes best/last checkpoints, early stopping, stop."""

    def __init__(
        self,
        request: FitRequest,
        report: Report,
        should_stop: Callable[[], bool],
        provenance: dict[str, Any],
        primary: str,
        mode: str,
        step_interval: float = 1.0,
    ) -> None:
        self.request = request
        self.report = report
        self.should_stop = should_stop
        self.provenance = provenance
        self.primary = primary
        self.mode = mode
        self.step_interval = step_interval
        self.batch_size_of: Callable[[Any], int] = lambda batch: len(batch[0])
        self.best_metric: float | None = None
        self.best_score: float | None = None  # higher is better, whatever the metric's mode
        self.best_loss: float | None = None  # breaks ties of the primary metric
        self.best_epoch: int | None = None
        self.wait = 0
        self.history: list[dict[str, Any]] = []
        self.best_info: dict[str, Any] | None = None
        self.last_info: dict[str, Any] | None = None
        # per curriculum stage (phase): [score, loss] of its best epoch so far
        self.stage_best: dict[str, list[float | None]] = {}
        self.stage_wait: dict[str, int] = {}  # epochs since the stage's best (its patience)
        self._last_step_report = 0.0
        self._epoch_start = 0.0
        self._epoch_images = 0
        self._epoch_loss = 0.0
        self._epoch_batches = 0
        self._epoch_parts: dict[str, float] = {}
        self._fit_start = time.monotonic()
        self._images_total = 0

    # Resume restores best/wait so "best" and early stopping survive a restart.
    def state_dict(self) -> dict[str, Any]:
        return {
            "best_metric": self.best_metric,
            "best_score": self.best_score,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_info": self.best_info,
            "stage_best": self.stage_best,
            "stage_wait": self.stage_wait,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_metric = state_dict.get("best_metric")
        self.best_score = state_dict.get("best_score", self.best_metric)
        self.best_loss = state_dict.get("best_loss")
        self.best_epoch = state_dict.get("best_epoch")
        self.wait = int(state_dict.get("wait") or 0)
        self.best_info = state_dict.get("best_info")
        self.stage_best = dict(state_dict.get("stage_best") or {})
        self.stage_wait = dict(state_dict.get("stage_wait") or {})

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._epoch_start = time.monotonic()
        self._epoch_images = 0
        self._epoch_loss = 0.0
        self._epoch_batches = 0
        self._epoch_parts: dict[str, float] = {}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        size = self.batch_size_of(batch)
        self._epoch_images += size
        self._images_total += size
        loss = pl_module.last_loss
        if loss is not None:
            self._epoch_loss += loss
            self._epoch_batches += 1
            for name, value in pl_module.loss_parts.items():
                self._epoch_parts[name] = self._epoch_parts.get(name, 0.0) + value
        now = time.monotonic()
        if now - self._last_step_report >= self.step_interval:
            self._last_step_report = now
            elapsed = now - self._epoch_start
            self.report(
                {
                    "type": "step",
                    "epoch": trainer.current_epoch + 1,
                    "epochs": int(trainer.max_epochs or 0),
                    "step": int(trainer.global_step),
                    "batch": batch_idx + 1,
                    "batches": int(trainer.num_training_batches),
                    "loss": loss,
                    "lr": _lr(trainer),
                    "images_per_s": self._epoch_images / elapsed if elapsed > 0 else None,
                }
            )
        # On an epoch's last batch the stop waits for on_train_epoch_end, so the checkpoint is
        # an end-of-epoch one (a mid-epoch one with every batch done would resume past it).
        last_batch = batch_idx + 1 >= int(trainer.num_training_batches)
        if not last_batch and self.should_stop():
            self.last_info = self._save(trainer, pl_module, "last", epoch=trainer.current_epoch)
            raise StopRequested

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        epoch = trainer.current_epoch + 1
        seconds = time.monotonic() - self._epoch_start
        metrics: dict[str, float] = {}
        if self._epoch_batches:
            metrics["train/loss"] = self._epoch_loss / self._epoch_batches
            for name, total in self._epoch_parts.items():
                metrics[f"train/{name}"] = total / self._epoch_batches
        for key, value in pl_module.train_metrics.items():
            metrics[f"train/{key}"] = float(value)
        for key, value in pl_module.val_metrics.items():
            metrics[f"val/{key}"] = float(value)
        lr = _lr(trainer)
        if lr is not None:
            metrics["lr"] = lr
        metrics["images_per_s"] = self._epoch_images / seconds if seconds > 0 else 0.0
        metric = metrics.get(self.primary)
        if metric is not None:
            score: float | None = metric if self.mode == "max" else -metric
        elif "train/loss" in metrics:  # no validation images: the lowest training loss
            metric = metrics["train/loss"]
            score = -metric
        else:
            score = None
        loss = metrics.get("val/loss")
        improved = better(score, loss, self.best_score, self.best_loss)
        stage = pl_module.checkpoint_stage()
        stage_improved = stage is not None and better(score, loss, *self.stage_best.get(stage, []))
        if improved:
            self.best_metric, self.best_score = metric, score
            self.best_epoch, self.wait = epoch, 0
            self.best_loss = loss
        else:
            self.wait += 1
        ended = None  # a stage out of patience ends here: the run's length and "last" see it
        if stage is not None:
            self.stage_wait[stage] = 0 if stage_improved else self.stage_wait.get(stage, 0) + 1
            ended = pl_module.end_stalled_stage(epoch, self.stage_wait[stage])
        max_epochs = int(trainer.max_epochs or epoch)
        per_epoch = (time.monotonic() - self._fit_start) / max(
            1, epoch - self._first_epoch(trainer)
        )
        event = {
            "type": "epoch",
            "epoch": epoch,
            "epochs": max_epochs,
            "step": int(trainer.global_step),
            "metrics": metrics,
            "seconds": seconds,
            "eta_seconds": per_epoch * (max_epochs - epoch),
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
        }
        if torch.cuda.is_available():
            event["gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        self.history.append(event)
        if improved:
            self.best_info = self._save(
                trainer, pl_module, "best", epoch=epoch, metric=metric, trainer_state=False
            )
        if stage_improved:
            assert stage is not None
            self.stage_best[stage] = [score, loss]
            self._save(
                trainer, pl_module, f"best-{stage}", epoch=epoch, metric=metric, trainer_state=False
            )
        self.last_info = self._save(trainer, pl_module, "last", epoch=epoch, metric=metric)
        self.report(event)
        if ended:
            self.report({"type": "log", "message": ended})
        if self.should_stop():
            raise StopRequested
        patience = int(self.request.config["early_stopping_patience"])
        if patience and self.wait >= patience:
            trainer.should_stop = True
            self.report({"type": "log", "message": f"Early stopping after epoch {epoch}."})

    def _first_epoch(self, trainer: L.Trainer) -> int:
        if not hasattr(self, "_start_epoch"):
            self._start_epoch = trainer.current_epoch
        return self._start_epoch

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._fit_start = time.monotonic()
        self._start_epoch = trainer.current_epoch
        # A resume from a mid-epoch checkpoint continues the epoch without
        # on_train_epoch_start: count its time and images from here, not from the clock's zero.
        self.on_train_epoch_start(trainer, pl_module)

    def _save(
        self,
        trainer: L.Trainer,
        pl_module: Any,
        which: str,
        *,
        epoch: int,
        metric: float | None = None,
        trainer_state: bool = True,
    ) -> dict[str, Any]:
        path = self.request.out_dir / f"{which}.ckpt"
        # What training learnt besides weights (multi-label thresholds...): at the top level for
        # readers, and under "extras" so the handler can copy the best checkpoint's into the
        # experiment without knowing the task.
        extras = pl_module.checkpoint_extras()
        provenance = {**self.provenance, **extras, "extras": extras, "saved_at": now_iso()}
        extra: dict[str, Any] = {
            "epoch": epoch,
            "global_step": int(trainer.global_step),
            "metric": metric,
            "metric_key": self.primary,
        }
        if trainer_state:
            dump = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
            if pl_module.ema is None:
                # Same tensors as the top-level state_dict (prefixed "model."): stored once.
                dump.pop("state_dict", None)
            extra["trainer"] = dump
        save_checkpoint(
            path,
            state_dict=pl_module.inference_model().state_dict(),
            provenance=provenance,
            extra=extra,
        )
        info = {
            "path": str(path),
            "epoch": epoch,
            "metric": metric,
            "saved_at": provenance["saved_at"],
        }
        self.report({"type": "checkpoint", "which": which, **info})
        return info


def _lr(trainer: L.Trainer) -> float | None:
    """The first optimizer's rate; None for a module that fits statistics without one."""
    if not trainer.optimizers or not trainer.optimizers[0].param_groups:
        return None
    return float(trainer.optimizers[0].param_groups[0]["lr"])


def _loader(
    dataset: Any,
    batch_size: int,
    workers: int,
    shuffle: bool,
    seed: int,
    collate: Callable[..., Any] | None = None,
) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=generator,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        collate_fn=collate,
    )


def fit(
    request: FitRequest,
    report: Report | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    report = report or (lambda event: None)
    should_stop = should_stop or (lambda: False)
    config = request.config
    code = get_task_code(request.task)
    notes: list[str] = []
    device = resolve_device()
    if device == "cpu":
        torch.set_num_threads(cpu_threads())
    precision = "32-true"
    if config["mixed_precision"]:
        if device == "cuda":
            precision = "16-mixed"
        else:
            notes.append("mixed_precision ignored: no CUDA device, training in fp32.")
    image_size = int(config["image_size"])
    if config.get("pretrained") == "required":  # checked at creation too; files can go
        require_weights(config["model"], WeightLocations.from_env())
    model_spec = get_model(config["model"])
    mean, std = list(model_spec.mean), list(model_spec.std)
    L.seed_everything(int(config["seed"]), workers=True, verbose=False)
    info = dict(request.prepared.info)
    module = code.build_module(config, request.classes, info)
    notes.extend(module.training_notes())
    train_samples = request.prepared.samples.get("train", [])
    val_samples = request.prepared.samples.get("val", [])
    provenance = {
        **request.provenance,
        "task": request.task,
        "model": config["model"],
        "config": config,
        "classes": list(request.classes),
        "num_classes": len(request.classes),
        **info,  # task facts at the top level too (older readers look for multi_label there)
        "task_info": info,
        "image_size": image_size,
        "mean": list(mean),
        "std": list(std),
        "preprocess": preprocess_spec(image_size, mean, std),
        "seed": int(config["seed"]),
        "deterministic": bool(config["deterministic"]),
        "weights": module.weights_note,
        "weights_used": weights_record(
            None if module.weights_note.startswith("random-init") else find_weights(config["model"])
        ),
        **({"arch": module.arch} if module.arch else {}),
        "versions": package_versions(),
        "packages_sha256": packages_hash(),
        "device": device,
        "precision": precision,
        "train_images": len(train_samples),
        "val_images": len(val_samples),
        "started_at": request.provenance.get("started_at") or now_iso(),
    }
    for note in notes:
        report({"type": "log", "message": note})
    request.out_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set, collate = code.datasets(
        request.prepared, config, request.classes, info, (mean, std)
    )
    workers = int(config["num_workers"])
    batch = int(config["batch_size"])
    train_loader = _loader(train_set, batch, workers, True, int(config["seed"]), collate)
    val_loader = (
        _loader(val_set, max(batch, 64), workers, False, 0, collate)
        if val_set is not None and len(val_set)
        else None
    )
    spec = get_task(request.task)
    callback = StudioCallback(
        request,
        report,
        should_stop,
        provenance,
        request.primary_metric or spec.primary_metric,
        request.metric_mode or spec.metric_mode,
    )
    callback.batch_size_of = code.batch_size_of
    trainer = make_trainer(
        config, [callback], request.out_dir, precision, has_val=val_loader is not None
    )
    ckpt_path = None
    if request.resume_from is not None:
        state = load_checkpoint(request.resume_from)
        trainer_state = state["extra"].get("trainer")
        if trainer_state is None:
            raise ValueError(f"{request.resume_from.name} has no trainer state to resume from")
        if "state_dict" not in trainer_state:
            trainer_state["state_dict"] = {f"model.{k}": v for k, v in state["state_dict"].items()}
        ckpt_path = request.out_dir / ".resume-state.ckpt"
        torch.save(trainer_state, ckpt_path)
        previous = state["provenance"].get("resumes", [])
        provenance["resumes"] = [
            *previous,
            {"from_epoch": state["extra"].get("epoch"), "at": now_iso()},
        ]
        if state["provenance"].get("started_at"):
            provenance["started_at"] = state["provenance"]["started_at"]
    # What the run uses is known now: the page shows it while training, not only at the end.
    report({"type": "started", "weights": module.weights_note, "device": device})
    status = "completed"
    try:
        trainer.fit(
            module, train_dataloaders=train_loader, val_dataloaders=val_loader, ckpt_path=ckpt_path
        )
    except StopRequested:
        status = "stopped"
    finally:
        if ckpt_path is not None:
            ckpt_path.unlink(missing_ok=True)
    epochs_done = callback.last_info["epoch"] if callback.last_info else int(trainer.current_epoch)
    provenance["finished_at"] = now_iso()
    stages_run = module.stages_run()
    if stages_run is not None:
        provenance["stages_run"] = stages_run
    return FitResult(
        status=status,
        epochs_done=int(epochs_done),
        global_step=int(trainer.global_step),
        best=callback.best_info,
        last=callback.last_info,
        history=callback.history,
        weights=module.weights_note,
        provenance=provenance,
        notes=notes,
    )


def make_trainer(
    config: dict[str, Any],
    callbacks: list[Callback],
    root: Path,
    precision: str = "32-true",
    *,
    has_val: bool = True,
) -> L.Trainer:
    """The one trainer factory: devices auto, no Lightning logger/checkpointing (ours instead)."""
    return L.Trainer(
        accelerator="auto",
        devices=1,
        max_epochs=int(config["epochs"]),
        precision=precision,  # type: ignore[arg-type]
        accumulate_grad_batches=int(config["accumulate_grad_batches"]),
        # "warn": deterministic algorithms wherever PyTorch has them; the few CUDA kernels
        # without one (weighted 2-D cross-entropy, which segmentation uses) run anyway with a
        # warning instead of failing the run on a GPU.
        deterministic="warn" if config["deterministic"] else False,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if has_val else 0,
        default_root_dir=str(root),
    )


def steps_per_epoch(samples: int, batch_size: int, accumulate: int) -> int:
    return math.ceil(math.ceil(samples / batch_size) / accumulate)
