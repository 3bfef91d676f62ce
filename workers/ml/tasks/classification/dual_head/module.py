"""The dual-head LightningModule: phases A/B/C as curriculum stages (the hierarchical model's
mechanism: per-part learning rates as a pure function of the step, optimizer state cleared at
each phase boundary, `val/stage` on the live chart, mid-phase resume; a phase out of patience
ends early and the later ones move up: StagePatience), loss
λ_cls · classification loss + λ_seg · tier-weighted segmentation loss. A part whose rate is 0
in a phase is frozen: no step, and a frozen backbone's BatchNorm statistics stay put. A recipe
that freezes the backbone (DINOv3's default) keeps it frozen in every phase but its unfrozen
last blocks, which train at the phase's backbone rate x backbone_lr_factor; a ViT's pyramid
neck is part of "seg"."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from app.tasks.dual_head import plan as phase_list
from workers.ml.backbones import freeze_backbone, pretrained_wanted
from workers.ml.hierarchy import (
    StagePatience,
    fresh_optimizer_at_boundary,
    schedule,
    stage_at,
    stage_label,
    staged_optimizers,
)
from workers.ml.module import StudioModule
from workers.ml.tasks.classification.dual_head.losses import seg_loss
from workers.ml.tasks.classification.dual_head.metrics import ChannelIoU, fired
from workers.ml.tasks.classification.dual_head.net import DualHeadNet
from workers.ml.tasks.classification.metrics import multiclass_metrics, multilabel_metrics


class DualHeadModule(StagePatience, StudioModule):
    def __init__(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> None:
        block = config["dual_head"]
        model = DualHeadNet(
            config["model"],
            len(classes),
            info["segmentation"],
            width=int(block["decoder_channels"]),
            pretrained=pretrained_wanted(config),
        )
        slow = freeze_backbone(model.backbone, config)
        super().__init__(config, model, model.weights_note)
        self.slow_params = slow  # the "backbone" group: its factor has backbone_lr_factor
        self.backbone_held = bool(config.get("freeze_backbone")) and not slow
        self.num_classes = len(classes)
        self.multi_label = bool(info.get("multi_label"))
        self.channels: list[str] = list(info["segmentation"]["channels"])
        self.exclusive = bool(info["segmentation"]["exclusive"])
        self.dice_weight = float(block["dice_weight"])
        self.plan = self.plan_of(1.0)
        self.thresholds: list[float] | None = [0.5] * self.num_classes if self.multi_label else None
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._iou: ChannelIoU | None = None

    @property
    def net(self) -> DualHeadNet:
        return self.model  # type: ignore[return-value]

    def plan_of(self, steps_per_epoch: float) -> list[dict[str, Any]]:
        return schedule(phase_list(self.config), steps_per_epoch, self.stage_lengths)

    def stage(self) -> dict[str, Any]:
        return stage_at(self.plan, epoch=int(self.current_epoch))

    def training_notes(self) -> list[str]:
        first = self.plan[0]
        if not self.weights_note.startswith("random-init") or "backbone" in first["active"]:
            return []
        return [
            f"Phase {first.get('name', 1)} keeps the backbone frozen, but it starts from random "
            "initialisation (no pretrained weights found): the decoder learns on random "
            "features until a later phase trains the backbone. Without pretrained weights, "
            "give that phase a backbone rate (lr_backbone) so that the masks train the backbone "
            "too, or provide the weights (Weights page)."
        ]

    def checkpoint_stage(self) -> str | None:
        return stage_label(self.plan, self.stage())

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"thresholds": list(self.thresholds) if self.thresholds else None}

    def on_train_epoch_start(self) -> None:
        fresh_optimizer_at_boundary(self, self.stage())

    def parts(self) -> list[tuple[str, list[nn.Module]]]:
        net = self.net
        seg = [net.decoder] if net.neck is None else [net.neck, net.decoder]
        return [("backbone", [net.backbone]), ("seg", seg), ("cls", [net.head])]

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        frozen = {p for p in ("backbone", "seg") if p not in self.stage()["active"]}
        if self.backbone_held:
            frozen.add("backbone")
        for part, modules in self.parts():
            if part in frozen:
                for module in modules:
                    module.eval()  # no BatchNorm statistics move in a frozen part

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, mask, weight, keep, _ = batch
        if x.shape[0] == 1:  # BatchNorm after ASPP's image pooling needs two values
            x, y, mask, weight, keep = (torch.cat([t, t]) for t in (x, y, mask, weight, keep))
            mask[1:] = mask[1:].flip(-1)
            x[1:] = x[1:].flip(-1)
        stage = self.stage()
        logits, seg = self.net.both(x)
        if self.multi_label:
            per = F.binary_cross_entropy_with_logits(logits, y.float(), reduction="none").mean(1)
        else:
            smoothing = float(self.config["label_smoothing"])
            per = F.cross_entropy(logits, y, label_smoothing=smoothing, reduction="none")
        keep = keep.float()
        cls = (per * keep).sum() / keep.sum().clamp(min=1.0)  # synthetic negatives: no class
        segment, parts = seg_loss(
            seg, mask, weight.float(), exclusive=self.exclusive, dice_weight=self.dice_weight
        )
        loss = float(stage["lambda_cls"]) * cls + float(stage["lambda_seg"]) * segment
        self.last_loss = float(loss.detach())
        self.loss_parts = {"cls_loss": float(cls.detach()), "seg_loss": float(segment.detach())}
        self.loss_parts.update(parts)
        return loss

    def parameter_groups(self) -> list[dict[str, Any]]:
        groups = [
            {"params": [p for m in ms for p in m.parameters() if p.requires_grad], "name": name}
            for name, ms in self.parts()
        ]
        return [g for g in groups if g["params"]]  # a wholly frozen backbone has none

    def configure_optimizers(self) -> Any:
        return staged_optimizers(
            self,
            super().configure_optimizers(),
            self.plan_of,
            float(self.config["warmup_epochs"]),
        )

    def on_validation_epoch_start(self) -> None:
        self._val = []
        self._iou = ChannelIoU(self.channels)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, mask, weight, _keep, _ = batch
        net: DualHeadNet = self.inference_model()  # type: ignore[assignment]
        logits, seg = net.both(x)
        self._val.append((logits.float().cpu(), y.cpu()))
        probs = net.channel_probs(seg).float().cpu().numpy()
        assert self._iou is not None
        for k in range(len(x)):
            if float(weight[k]) > 0:
                self._iou.update(fired(probs[k], self.exclusive), mask[k].cpu().numpy())

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            self.val_metrics = {}
            return
        logits = torch.cat([b[0] for b in self._val]).numpy()
        targets = torch.cat([b[1] for b in self._val]).numpy()
        if self.multi_label:
            metrics = multilabel_metrics(logits, targets, self.thresholds)
        else:
            metrics = multiclass_metrics(logits, targets)
        assert self._iou is not None
        seg = self._iou.compute()
        metrics["seg_miou"] = float(seg["seg_miou"])  # type: ignore[arg-type]
        for name, value in seg["per_channel_iou"].items():  # type: ignore[attr-defined]
            metrics[f"iou_{name}"] = float(value)
        metrics["stage"] = float(self.plan.index(self.stage()) + 1)
        self.val_metrics = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
