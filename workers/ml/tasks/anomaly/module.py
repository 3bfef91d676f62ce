"""The anomaly LightningModule: trains (or fits) the chosen detector and calibrates the
threshold on the validation subset at every epoch.

- anomaly_unet, unsupervised: synthetic defects on normal images; pixel BCE + Dice on their
  masks.
- anomaly_unet, supervised: real labels, BCEWithLogits on the image logit (a binary
  classifier), plus pixel BCE where a defect mask (or a normal image) says where.
- conv_autoencoder: squared + SSIM reconstruction error of normal images.
- padim / patchcore: one pass gathering feature statistics, no optimizer (manual
  optimisation with nothing to step); training stops after that epoch.

Validation: scores and maps of every val image; the threshold is the one of maximum F1 when
anomalous images are present, else the score that flags `target_fpr` of the normal ones.
`checkpoint_extras` saves it with the score and map ranges seen (the export's normalisation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from app.catalog import get_model
from workers.ml.backbones import pretrained_wanted
from workers.ml.module import StudioModule
from workers.ml.tasks.anomaly.metrics import at_threshold, auroc, calibrate, pixel_auroc
from workers.ml.tasks.anomaly.nets import build_detector, defect_map, memory_method, peak
from workers.ml.tasks.anomaly.synth import paste_defects


class MissingWeights(ValueError):
    """A feature-memory method asked for without local pretrained weights."""


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probs = torch.sigmoid(logits)
    overlap = (probs * target).sum()
    return 1 - (2 * overlap + 1) / (probs.sum() + target.sum() + 1)


def map_range(maps: np.ndarray, labels: np.ndarray, threshold: float) -> list[float]:
    """Display range of the maps: from the normal images' median pixel to the 99.9th
    percentile of all (at least the threshold), so normal texture shows cold."""
    normal = maps[labels == 0] if (labels == 0).any() else maps
    low = float(np.median(normal))
    high = max(float(np.quantile(maps, 0.999)), float(threshold))
    return [low, high if high > low else low + 1e-6]


def calibration_of(
    scores: np.ndarray,
    labels: np.ndarray,
    maps: np.ndarray,
    masks: np.ndarray,
    known: np.ndarray,
    target_fpr: float,
) -> tuple[dict[str, Any], dict[str, float]]:
    """(calibration facts to save, metrics to report) for one set of scored images."""
    found = calibrate(scores, labels, target_fpr)
    threshold = float(found["threshold"])
    counts = at_threshold(scores, labels, threshold)
    metrics: dict[str, float | None] = {
        "auroc": auroc(scores, labels),
        "f1": counts["f1"],
        "precision": counts["precision"] if labels.any() else None,
        "recall": counts["recall"],
        "false_alarm_rate": counts["fpr"],
        "threshold": threshold,
        "score_normal": float(scores[labels == 0].mean()) if (labels == 0).any() else None,
    }
    with_masks = known.astype(bool)
    if with_masks.any() and masks[with_masks].any():
        # Every 4th pixel each way: the curve tracks pixel AUROC at 1/16 of the cost; AUPRO
        # (slower, per defect region) is left to the evaluation.
        metrics["pixel_auroc"] = pixel_auroc(
            maps[with_masks][:, ::4, ::4], masks[with_masks][:, ::4, ::4]
        )
    facts = {
        "threshold": threshold,
        "threshold_rule": found["rule"],
        "calibration_images": int(found["images"]),
        "score_range": [float(scores.min()), float(scores.max())],
        "map_range": map_range(maps, labels, threshold),
    }
    return facts, {k: float(v) for k, v in metrics.items() if v is not None}


class AnomalyModule(StudioModule):
    def __init__(self, config: dict[str, Any], info: dict[str, Any]) -> None:
        method = str(config["model"])
        found = memory_method(method)
        memory = found is not None
        if memory:
            config = {**config, "ema": False}  # statistics, not weights: nothing to average
        spec = get_model(method)  # the backbone's normalisation (memory methods inherit it)
        net, note = build_detector(
            method,
            image_size=int(config["image_size"]),
            mean=list(spec.mean),
            std=list(spec.std),
            pretrained=pretrained_wanted(config),
        )
        if found is not None and not note.startswith("pretrained"):
            backbone = get_model(found[1])
            raise MissingWeights(
                f"{method} works on pretrained {backbone.title} features, and no local "
                f"{backbone.id} weights were found (the studio's weights folder, "
                "STUDIO_WEIGHTS_DIR, the torch hub or Hugging Face cache), or pretrained=none. "
                "Add them on the Weights page, or choose anomaly_unet or conv_autoencoder, "
                "which learn from random initialisation."
            )
        super().__init__(config, net, note)
        self.method = method
        self.memory = memory
        self.mode = str(info.get("mode", "unsupervised"))
        if memory:
            self.automatic_optimization = False
        self.generator = torch.Generator().manual_seed(int(config["seed"]))
        self.mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std).view(1, 3, 1, 1)
        self.calibration: dict[str, Any] = {}
        self._val: list[tuple[torch.Tensor, ...]] = []

    def checkpoint_extras(self) -> dict[str, Any]:
        return dict(self.calibration)

    def parameter_groups(self) -> list[Any]:
        return [] if self.memory else super().parameter_groups()

    def configure_optimizers(self) -> Any:
        return None if self.memory else super().configure_optimizers()

    def _unet_loss(self, batch: Any) -> torch.Tensor:
        x, y, masks, known, _ = batch
        if self.mode == "supervised":
            logits = self.model.logits(x)
            # The image logit is the score's (the smoothed map's peak) as a logit: a binary
            # classifier trained with BCE whose decision is the same number the map shows.
            image_logit = torch.logit(peak(defect_map(logits)), eps=1e-6)
            image = F.binary_cross_entropy_with_logits(image_logit, y)
            parts = {"image_bce": float(image.detach())}
            loss = image
            if known.any():
                picked = known.bool()
                pixel = F.binary_cross_entropy_with_logits(logits[picked], masks[picked])
                parts["pixel_bce"] = float(pixel.detach())
                loss = loss + pixel
            self.loss_parts = parts
            return loss
        share = float(self.config.get("synthetic_share", 0.5))
        defective, masks = paste_defects(x, share, self.generator, self.mean, self.std)
        logits = self.model.logits(defective)
        pixel = F.binary_cross_entropy_with_logits(logits, masks, pos_weight=logits.new_tensor(5.0))
        dice = dice_loss(logits, masks)
        self.loss_parts = {"pixel_bce": float(pixel.detach()), "dice": float(dice.detach())}
        return pixel + dice

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        x = batch[0]
        if self.memory:
            self.model.fit(x)
            if batch_idx + 1 >= int(self.trainer.num_training_batches):
                self.model.finish()
            self.last_loss = 0.0
            return None
        if self.method == "conv_autoencoder":
            squared, structural = self.model.errors(x, self.model.reconstruct(x))
            loss = 10 * squared.mean() + structural.mean()
            self.loss_parts = {
                "squared": float(squared.mean().detach()),
                "ssim": float(structural.mean().detach()),
            }
        else:
            loss = self._unet_loss(batch)
        self.last_loss = float(loss.detach())
        return loss

    def on_train_epoch_end(self) -> None:
        if self.memory:
            self.trainer.should_stop = True  # the statistics are complete after one pass

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, masks, known, _ = batch
        scores, maps = self.inference_model()(x)
        self._val.append(
            (scores.float().cpu(), y.cpu(), maps.float().cpu(), masks.cpu(), known.cpu())
        )

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            self.val_metrics = {}
            return
        scores, labels, maps, masks, known = (
            torch.cat(parts).numpy() for parts in zip(*self._val, strict=True)
        )
        facts, metrics = calibration_of(
            scores,
            labels.astype(int),
            maps[:, 0],
            masks[:, 0] > 0.5,
            known,
            float(self.config.get("target_fpr", 0.01)),
        )
        self.calibration = facts
        self.val_metrics = metrics
