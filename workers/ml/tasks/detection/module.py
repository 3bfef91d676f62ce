"""The detection LightningModule: a torchvision-style detector that returns its loss parts in
training and boxes in evaluation; validation computes COCO mAP (map50 picks the best
checkpoint)."""

from __future__ import annotations

from typing import Any

import torch

from workers.ml.backbones import Backbone, freeze_backbone, pretrained_wanted
from workers.ml.module import StudioModule
from workers.ml.tasks.detection import metrics as det_metrics
from workers.ml.tasks.detection.models import build_detector


def part_name(key: str) -> str:
    """A detector's loss key as a curve name: loss_classifier, loss_bbox_regression, ..."""
    return key if key.startswith("loss_") else f"loss_{key}"


def freeze_detector_backbone(model: Any, config: dict[str, Any]) -> list[torch.nn.Parameter]:
    """The recipe's backbone freezing for a torchvision-style detector; returns the unfrozen
    last blocks of a studio backbone under its own pyramid (DINOv3), which train slower."""
    body = getattr(model.backbone, "body", None)
    if isinstance(body, Backbone):
        return freeze_backbone(body, config)
    if config["freeze_backbone"]:
        for parameter in model.backbone.parameters():
            parameter.requires_grad = False
    return []


class DetectionModule(StudioModule):
    def __init__(self, config: dict[str, Any], classes: list[str]) -> None:
        model, note = build_detector(
            config["model"],
            len(classes),
            int(config["image_size"]),
            config,
            pretrained=pretrained_wanted(config),
        )
        slow = freeze_detector_backbone(model, config)
        super().__init__(config, model, note)
        self.slow_params = slow
        self.classes = classes
        self._metric: Any = None

    def forward(self, x: Any) -> Any:
        return self.model(list(x))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, targets, _ = batch
        parts = self.model(
            list(images), [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
        )
        loss = sum(parts.values())
        self.last_loss = float(loss.detach())
        self.loss_parts = {part_name(k): float(v.detach()) for k, v in parts.items()}
        return loss  # type: ignore[return-value]

    def on_validation_epoch_start(self) -> None:
        self._metric = det_metrics.new_metric(per_class=False)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, targets, _ = batch
        found = self.inference_model()(list(images))
        preds = [
            det_metrics.as_preds(
                f["boxes"].cpu().numpy(), f["scores"].cpu().numpy(), f["labels"].cpu().numpy()
            )
            for f in found
        ]
        truth = []
        for t in targets:
            boxes = torch.cat([t["boxes"], t["ignore_boxes"]]).cpu().numpy()
            labels = torch.cat([t["labels"], t["ignore_labels"]]).cpu().numpy()
            crowd = [0] * len(t["boxes"]) + [1] * len(t["ignore_boxes"])
            truth.append(det_metrics.as_target(boxes, labels, crowd))
        self._metric.update(preds, truth)

    def on_validation_epoch_end(self) -> None:
        if self._metric is None:
            self.val_metrics = {}
            return
        result = self._metric.compute()
        self.val_metrics = {
            "map50": max(0.0, float(result["map_50"])),
            "map": max(0.0, float(result["map"])),
        }
        self._metric = None
