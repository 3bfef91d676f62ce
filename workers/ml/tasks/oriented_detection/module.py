"""The oriented-detection LightningModule: rotated FCOS with focal, KLD and centre-ness losses;
validation computes DOTA mAP at the SxS input size (map50 picks the best checkpoint)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from workers.ml.backbones import pretrained_wanted
from workers.ml.module import StudioModule
from workers.ml.tasks.oriented_detection.geometry import postprocess
from workers.ml.tasks.oriented_detection.loss import losses
from workers.ml.tasks.oriented_detection.metrics import OrientedMAP
from workers.ml.tasks.oriented_detection.models import build_oriented, scores_of


def detections(out: dict[str, torch.Tensor], config: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    """Each image's detections (le90, degrees, input pixels) from the raw head outputs, with
    every score above 0.05 (mAP) — the threshold filters later."""
    obb = out["obb"].detach().double().cpu().numpy()
    scores = scores_of(out).detach().double().cpu().numpy()
    return [
        postprocess(
            obb[b],
            scores[b],
            score_floor=min(0.05, float(config.get("score_threshold", 0.05))),
            nms_iou=float(config.get("nms_iou", 0.3)),
            max_detections=int(config.get("max_detections", 100)),
        )
        for b in range(len(obb))
    ]


class OrientedModule(StudioModule):
    def __init__(self, config: dict[str, Any], classes: list[str]) -> None:
        model, note = build_oriented(
            config["model"], len(classes), int(config["image_size"]), pretrained_wanted(config)
        )
        if config.get("freeze_backbone") and hasattr(model.pyramid, "body"):  # type: ignore[union-attr]
            for parameter in model.pyramid.body.parameters():  # type: ignore[union-attr]
                parameter.requires_grad = False
        super().__init__(config, model, note)
        self.classes = classes
        self._metric: OrientedMAP | None = None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, targets, _ = batch
        parts = losses(self.model(images), targets, self.model.points, self.model.strides)
        loss = sum(parts.values())
        self.last_loss = float(loss.detach())
        self.loss_parts = {k: float(v.detach()) for k, v in parts.items()}
        return loss  # type: ignore[return-value]

    def on_validation_epoch_start(self) -> None:
        self._metric = OrientedMAP(len(self.classes))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, targets, _ = batch
        found = detections(self.inference_model()(images), self.config)
        assert self._metric is not None
        for f, t in zip(found, targets, strict=True):
            truth = torch.cat([t["obb"], t["ignore_obb"]]).double().cpu().numpy()
            truth[:, 4] = np.degrees(truth[:, 4])
            self._metric.update(
                f["obb"],
                f["scores"],
                f["labels"],
                truth,
                torch.cat([t["labels"], t["ignore_labels"]]).cpu().numpy(),
                np.array([False] * len(t["obb"]) + [True] * len(t["ignore_obb"])),
            )

    def on_validation_epoch_end(self) -> None:
        if self._metric is None:
            self.val_metrics = {}
            return
        result = self._metric.compute(self.classes)
        self.val_metrics = {"map50": result["map50"] or 0.0, "map": result["map"] or 0.0}
        self._metric = None
