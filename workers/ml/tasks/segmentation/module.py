"""The segmentation LightningModule: CE (+ class weights) + Dice on logits at the input size;
validation accumulates the pixel confusion matrix (val/miou picks the best checkpoint)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workers.ml.backbones import freeze_backbone, pretrained_wanted
from workers.ml.module import StudioModule
from workers.ml.tasks.segmentation.losses import segmentation_loss
from workers.ml.tasks.segmentation.metrics import PixelMetrics
from workers.ml.tasks.segmentation.models import build_segmenter


def at_least_two(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm after global pooling (ASPP) needs two values per channel: a last batch of one
    gets its mirrored image added rather than fail."""
    if x.shape[0] == 1:
        return torch.cat([x, x.flip(-1)]), torch.cat([y, y.flip(-1)])
    return x, y


class SegmentationModule(StudioModule):
    def build_network(
        self, config: dict[str, Any], classes: list[str], info: dict[str, Any], pretrained: bool
    ) -> tuple[nn.Module, str]:
        """The network and its weights note (the hierarchical module builds its own)."""
        return build_segmenter(
            config["model"],
            len(classes),
            width=config.get("decoder_channels"),
            pretrained=pretrained,
        )

    def __init__(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> None:
        model, note = self.build_network(config, classes, info, pretrained_wanted(config))
        slow = freeze_backbone(model.backbone, config)
        super().__init__(config, model, note)
        self.slow_params = slow
        self.num_classes = len(classes)
        self.background = info.get("background")
        self.dice_weight = float(config.get("dice_weight", 0.0))
        weights = info.get("class_weights")
        self.register_buffer(
            "class_weights",
            torch.tensor(weights, dtype=torch.float32) if weights else None,
            persistent=False,
        )
        self._metrics: PixelMetrics | None = None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        x, y = at_least_two(x, y)
        loss, parts = segmentation_loss(
            self.model(x), y, dice_weight=self.dice_weight, weights=self.class_weights
        )
        self.last_loss = float(loss.detach())
        self.loss_parts = parts
        return loss

    def on_validation_epoch_start(self) -> None:
        self._metrics = PixelMetrics(self.num_classes, self.background)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, _ = batch
        assert self._metrics is not None
        pred = self.inference_model()(x).argmax(dim=1)
        self._metrics.update(pred, y)

    def on_validation_epoch_end(self) -> None:
        if self._metrics is None:
            self.val_metrics = {}
            return
        result = self._metrics.compute()
        self.val_metrics = {
            key: float(result[key])
            for key in ("miou", "miou_no_bg", "pixel_accuracy", "dice")
            if result.get(key) is not None
        }
        self._metrics = None
