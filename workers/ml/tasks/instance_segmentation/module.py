"""The instance-segmentation LightningModule: Mask R-CNN returns its loss parts in training and
instances in evaluation; validation scores boxes and masks with COCO mAP in one pass (mask
mAP picks the best checkpoint)."""

from __future__ import annotations

from typing import Any

import torch

from workers.ml.backbones import pretrained_wanted
from workers.ml.module import StudioModule
from workers.ml.tasks.detection import metrics as det_metrics
from workers.ml.tasks.detection.module import freeze_detector_backbone, part_name
from workers.ml.tasks.instance_segmentation.metrics import as_preds, as_target, headline
from workers.ml.tasks.instance_segmentation.models import build_instance_model


class InstanceModule(StudioModule):
    def __init__(self, config: dict[str, Any], classes: list[str]) -> None:
        model, note = build_instance_model(
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
            list(images),
            [{"boxes": t["boxes"], "labels": t["labels"], "masks": t["masks"]} for t in targets],
        )
        loss = sum(parts.values())
        self.last_loss = float(loss.detach())
        self.loss_parts = {part_name(k): float(v.detach()) for k, v in parts.items()}
        return loss  # type: ignore[return-value]

    def on_validation_epoch_start(self) -> None:
        self._metric = det_metrics.new_metric(per_class=False, iou_type=("bbox", "segm"))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, targets, _ = batch
        found = self.inference_model()(list(images))
        preds = [
            as_preds(
                f["boxes"].cpu().numpy(),
                f["scores"].cpu().numpy(),
                f["labels"].cpu().numpy(),
                f["masks"][:, 0].cpu().numpy() >= 0.5,
            )
            for f in found
        ]
        truth = []
        for t in targets:
            masks = torch.cat([t["masks"], t["ignore_masks"]]).cpu().numpy().astype(bool)
            labels = torch.cat([t["labels"], t["ignore_labels"]]).cpu().numpy()
            crowd = [0] * len(t["masks"]) + [1] * len(t["ignore_masks"])
            truth.append(as_target(masks, labels, crowd))
        self._metric.update(preds, truth)

    def on_validation_epoch_end(self) -> None:
        if self._metric is None:
            self.val_metrics = {}
            return
        self.val_metrics = headline(self._metric.compute())
        self._metric = None
