"""The regression LightningModule: a backbone with one linear output per target, trained on
z-scored targets with MSE, L1 or Huber; validation reports de-normalised metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from workers.ml.backbones import freeze_backbone, pretrained_wanted
from workers.ml.data import ImageDataset
from workers.ml.heads import build_classifier
from workers.ml.module import StudioModule
from workers.ml.tasks.base import Sample
from workers.ml.tasks.regression.metrics import denormalize, regression_metrics


class ValueDataset(ImageDataset):
    """(image, z-scored target vector, index)."""

    def __init__(self, samples: Sequence[Sample], transform: Any, info: dict[str, Any]) -> None:
        super().__init__(samples, transform)
        count = len(info.get("targets") or [])
        self.mean = torch.tensor(info.get("target_mean") or [0.0] * count, dtype=torch.float32)
        self.std = torch.tensor(info.get("target_std") or [1.0] * count, dtype=torch.float32)

    def target_tensor(self, target: Any) -> torch.Tensor:
        return (torch.tensor(target, dtype=torch.float32) - self.mean) / self.std


def value_loss(pred: torch.Tensor, target: torch.Tensor, config: dict[str, Any]) -> torch.Tensor:
    kind = config.get("loss", "mse")
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "huber":
        return F.huber_loss(pred, target, delta=float(config.get("huber_delta", 1.0)))
    return F.mse_loss(pred, target)


class RegressionModule(StudioModule):
    def __init__(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        self.info = dict(info)
        names = list(info.get("targets") or [])
        model, note = build_classifier(
            config["model"], len(names), pretrained=pretrained_wanted(config)
        )
        slow = freeze_backbone(model.backbone, config)
        super().__init__(config, model, note)
        self.slow_params = slow
        self.names = names
        self._val_pred: list[torch.Tensor] = []
        self._val_true: list[torch.Tensor] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        loss = value_loss(self.model(x), y, self.config)
        self.last_loss = float(loss.detach())
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_pred, self._val_true = [], []

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, _ = batch
        self._val_pred.append(self.inference_model()(x).float().cpu())
        self._val_true.append(y.cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_pred:
            self.val_metrics = {}
            return
        z_pred = torch.cat(self._val_pred)
        z_true = torch.cat(self._val_true)
        loss = float(value_loss(z_pred, z_true, self.config))
        pred = denormalize(z_pred.numpy(), self.info)
        true = denormalize(z_true.numpy(), self.info)
        found = regression_metrics(pred, true, self.names)
        metrics = {k: found[k] for k in ("mae", "mse", "rmse") if found[k] == found[k]}
        if found["r2"] is not None:
            metrics["r2"] = found["r2"]
        metrics["loss"] = loss
        self.val_metrics = metrics
