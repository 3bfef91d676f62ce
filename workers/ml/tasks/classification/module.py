"""The classification LightningModule: multi-class (softmax + CE) and multi-label (sigmoid +
BCE) in one module; validation gathers logits for the numpy metrics (and multi-label
threshold tuning)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from workers.ml.heads import build_classifier
from workers.ml.module import StudioModule
from workers.ml.tasks.classification.metrics import (
    multiclass_metrics,
    multilabel_metrics,
    sigmoid,
    tune_thresholds,
)


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


class ClassificationModule(StudioModule):
    def __init__(self, config: dict[str, Any], num_classes: int, multi_label: bool) -> None:
        model, note = build_classifier(
            config["model"], num_classes, pretrained=bool(config["pretrained"])
        )
        if config["freeze_backbone"]:
            for parameter in model.backbone.parameters():
                parameter.requires_grad = False
        super().__init__(config, model, note)
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.thresholds: list[float] | None = [0.5] * num_classes if multi_label else None
        self._val_logits: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []
        self._train_hits = 0.0
        self._train_seen = 0

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

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"thresholds": list(self.thresholds) if self.thresholds else None}

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, y.float())
        return F.cross_entropy(logits, y, label_smoothing=float(self.config["label_smoothing"]))

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
