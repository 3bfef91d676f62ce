"""Classification (multi-class softmax + CE, multi-label sigmoid + BCE): module and evaluation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L  # noqa: N812 - the library's own convention
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from workers.ml.checkpoints import load_for_inference, preprocess
from workers.ml.data import ImageDataset, Sample, load_image
from workers.ml.heads import build_classifier
from workers.ml.metrics import multiclass_metrics, multilabel_metrics, sigmoid, tune_thresholds
from workers.ml.tasks import TaskCode, register_task_code
from workers.ml.transforms import EvalTransform


def schedule_factor(config: dict[str, Any], steps_per_epoch: float, total_steps: int):
    """LR multiplier per optimizer step; a pure function of the step so resume (and a raised
    epoch count) needs no scheduler internals beyond the step counter."""
    kind = config["scheduler"]
    total = max(1, total_steps)

    def factor(step: int) -> float:
        if kind == "none":
            return 1.0
        if kind == "step":
            epoch = int(step // max(1.0, steps_per_epoch))
            return float(config["gamma"] ** (epoch // config["step_size"]))
        if kind == "onecycle":
            warm = max(1, int(0.3 * total))
            if step < warm:
                return 0.04 + 0.96 * step / warm
            progress = min(1.0, (step - warm) / max(1, total - warm))
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * progress))
        warm = int(config["warmup_epochs"] * steps_per_epoch)
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def mix_batch(
    x: torch.Tensor, y: torch.Tensor, mixup: float, cutmix: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp or CutMix on a batch with soft targets (y: [N, C] float)."""
    use_cutmix = cutmix > 0 and (mixup <= 0 or torch.rand(1).item() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = float(np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,)))).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], device=x.device)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(0, h, (1,))), int(torch.randint(0, w, (1,)))
        y0, y1 = max(0, cy - cut_h // 2), min(h, cy + cut_h // 2)
        x0, x1 = max(0, cx - cut_w // 2), min(w, cx + cut_w // 2)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * y + (1 - lam) * y[perm]


class ClassificationModule(L.LightningModule):
    """One module for multi-class and multi-label; validation gathers logits for numpy metrics."""

    def __init__(self, config: dict[str, Any], num_classes: int, multi_label: bool) -> None:
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.model, self.weights_note = build_classifier(
            config["model"], num_classes, pretrained=bool(config["pretrained"])
        )
        if config["freeze_backbone"]:
            for parameter in self.model.backbone.parameters():
                parameter.requires_grad = False
        self.ema: nn.Module | None = None
        if config["ema"]:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(
                self.model, multi_avg_fn=get_ema_multi_avg_fn(config["ema_decay"]), use_buffers=True
            )
        self.thresholds: list[float] | None = [0.5] * num_classes if multi_label else None
        self.val_metrics: dict[str, float] = {}
        self._val_logits: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []
        self.last_loss: float | None = None
        self._train_hits = 0.0
        self._train_seen = 0

    def inference_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, y.float())
        return F.cross_entropy(logits, y, label_smoothing=float(self.config["label_smoothing"]))

    @property
    def train_metrics(self) -> dict[str, float]:
        """Accuracy on this epoch's training batches as trained (augmented, train mode; a
        MixUp/CutMix image counts against its dominant label): the curve the leakage audit
        compares with val/acc."""
        return {"acc": self._train_hits / self._train_seen} if self._train_seen else {}

    def on_train_epoch_start(self) -> None:
        self._train_hits, self._train_seen = 0.0, 0

    def _count_hits(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            if self.multi_label:
                cut = torch.tensor(self.thresholds or [0.5] * self.num_classes, device=y.device)
                hits = ((torch.sigmoid(logits) >= cut) == y.bool()).all(1)
            else:
                hits = logits.argmax(1) == y
            self._train_hits += float(hits.sum())
            self._train_seen += int(y.shape[0])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        augment = self.config["augment"]
        mixup, cutmix = float(augment["mixup_alpha"]), float(augment["cutmix_alpha"])
        if (mixup > 0 or cutmix > 0) and x.shape[0] > 1:
            soft = y.float() if self.multi_label else F.one_hot(y, self.num_classes).float()
            x, soft = mix_batch(x, soft, mixup, cutmix)
            logits = self.model(x)
            self._count_hits(logits, (soft >= 0.5).long() if self.multi_label else soft.argmax(1))
            if self.multi_label:
                loss = F.binary_cross_entropy_with_logits(logits, soft)
            else:
                loss = F.cross_entropy(
                    logits, soft, label_smoothing=float(self.config["label_smoothing"])
                )
        else:
            logits = self.model(x)
            loss = self._loss(logits, y)
            self._count_hits(logits, y)
        self.last_loss = float(loss.detach())
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, _ = batch
        self._val_logits.append(self.inference_model()(x).float().cpu())
        self._val_targets.append(y.cpu())

    def on_validation_epoch_start(self) -> None:
        self._val_logits, self._val_targets = [], []

    def on_validation_epoch_end(self) -> None:
        if not self._val_logits:
            self.val_metrics = {}
            return
        logits = torch.cat(self._val_logits).numpy()
        targets = torch.cat(self._val_targets).numpy()
        if self.multi_label:
            if self.config["tune_thresholds"]:
                self.thresholds = tune_thresholds(sigmoid(logits), targets)
            self.val_metrics = multilabel_metrics(logits, targets, self.thresholds)
        else:
            self.val_metrics = multiclass_metrics(logits, targets)

    def configure_optimizers(self) -> Any:
        config = self.config
        params = [p for p in self.model.parameters() if p.requires_grad]
        if config["optimizer"] == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params,
                lr=config["lr"],
                momentum=config["momentum"],
                weight_decay=config["weight_decay"],
                nesterov=config["momentum"] > 0,
            )
        else:
            optimizer = torch.optim.AdamW(
                params, lr=config["lr"], weight_decay=config["weight_decay"]
            )
        total = int(self.trainer.estimated_stepping_batches)
        per_epoch = total / max(1, int(self.trainer.max_epochs or 1))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, schedule_factor(config, per_epoch, total)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def build_module(
    config: dict[str, Any], classes: list[str], multi_label: bool
) -> ClassificationModule:
    return ClassificationModule(config, len(classes), multi_label)


@torch.no_grad()
def evaluate(checkpoint: Path, samples: list[Sample], batch_size: int = 64) -> dict[str, Any]:
    """Metrics of a checkpoint on samples, through load_for_inference + preprocess (the same path
    evaluation and prediction use), so "test/acc" is reproducible from the checkpoint alone."""
    model = load_for_inference(checkpoint)
    dataset = ImageDataset(
        samples,
        EvalTransform(model.image_size, model.mean, model.std),
        multi_label=model.multi_label,
        num_classes=len(model.classes),
        cache=False,
    )
    logits, targets = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        batch = torch.stack([item[0] for item in items])
        logits.append(model.model(batch.to(model.device)).float().cpu())
        targets.append(torch.stack([item[1] for item in items]))
    if not logits:
        return {"n": 0}
    all_logits = torch.cat(logits).numpy()
    all_targets = torch.cat(targets).numpy()
    if model.multi_label:
        metrics: dict[str, Any] = multilabel_metrics(all_logits, all_targets, model.thresholds)
    else:
        metrics = multiclass_metrics(all_logits, all_targets)
    metrics["accuracy"] = metrics.pop("acc")
    metrics["n"] = len(all_targets)
    return metrics


def predict_image(checkpoint_model: Any, path: Path) -> torch.Tensor:
    """Logits of one image file (helper for prediction and tests)."""
    tensor = preprocess(load_image(path), checkpoint_model).unsqueeze(0)
    return checkpoint_model.model(tensor.to(checkpoint_model.device)).float().cpu()[0]


register_task_code(
    TaskCode(
        key="classification",
        build_module=build_module,
        evaluate=evaluate,
        primary_metric="val/acc",
        metric_mode="max",
    )
)
