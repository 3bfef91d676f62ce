"""Hierarchical semantic segmentation: the segmenter's decoder features feed one 1x1 per-pixel
head per level (binary, coarse, fine), the POC plan's HierarchicalUPerNet on the studio's own
decoders (U-Net, DeepLabV3+ on any backbone, torchvision's FCN / DeepLab / LRASPP).

The network's `forward` returns fine logits [N, C, H, W] over every project class (non-leaf
classes masked), so evaluation, export, parity and the decoder treat it as a flat segmenter;
with gated inference the fine logits outside the coarse head's predicted group are masked per
pixel inside the one model. `levels()` gives every head's logits for training and the
per-level evaluation.

Training: loss = Σ w_level · (CE + dice_weight · Dice)_level over the stage's active levels;
the fine logits of a pixel are masked to the pixel's true coarse group, so a fine class only
competes with its siblings and the other groups' fine logits get no gradient from it. Pixels
of a group (non-leaf) class are ignore at the fine level and count at the level that group
belongs to (elsewhere ignore). The curriculum in time is
workers/ml/hierarchy.py's, shared with hierarchical classification.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workers.ml.hierarchy import (
    NEG,
    fresh_optimizer_at_boundary,
    stage_at,
    stage_label,
    stage_plan,
    staged_optimizers,
)
from workers.ml.tasks.segmentation.decode import IGNORE
from workers.ml.tasks.segmentation.losses import segmentation_loss
from workers.ml.tasks.segmentation.metrics import PixelMetrics
from workers.ml.tasks.segmentation.models import (
    BackboneSegmenter,
    TorchvisionSegmenter,
    UNet,
    build_segmenter,
)
from workers.ml.tasks.segmentation.module import SegmentationModule, at_least_two


class LevelConv(nn.Module):
    """One 1x1 classifier per level over the same decoder features, their logits side by side
    (channels: fine, then the group levels), in place of the segmenter's one classifier."""

    def __init__(self, in_channels: int, sizes: dict[str, int]) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({lv: nn.Conv2d(in_channels, n, 1) for lv, n in sizes.items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(x) for head in self.heads.values()], dim=1)


def classifier_slots(segmenter: nn.Module) -> list[tuple[nn.Module, str]]:
    """Where each segmenter keeps its final per-pixel classifier (LRASPP has two, summed)."""
    if isinstance(segmenter, UNet):
        return [(segmenter, "classifier")]
    if isinstance(segmenter, BackboneSegmenter):
        return [(segmenter.head, "classifier")]
    if isinstance(segmenter, TorchvisionSegmenter):
        head = segmenter.net.classifier
        if isinstance(head, nn.Sequential):
            return [(head, str(len(head) - 1))]
        return [(head, "low_classifier"), (head, "high_classifier")]
    raise ValueError(f"no per-pixel classifier known for {type(segmenter).__name__}")


class HierarchicalSegmenter(nn.Module):
    """A catalog segmenter whose classifier gives every level's logits at the input size."""

    def __init__(
        self,
        model_id: str,
        num_classes: int,
        info: dict[str, Any],
        *,
        width: int | None = None,
        pretrained: bool = False,
        arch: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        segmenter, self.weights_note = build_segmenter(
            model_id, num_classes, width=width, pretrained=pretrained, arch=arch
        )
        self.sizes = {"fine": num_classes} | {
            lv: len(info["groups"][lv]) for lv in info["levels"][:-1]
        }
        for parent, name in classifier_slots(segmenter):
            old = getattr(parent, name)
            setattr(parent, name, LevelConv(old.in_channels, self.sizes))
        self.segmenter = segmenter
        for level, index in info["class_group"].items():
            self.register_buffer(f"group_{level}", torch.tensor(index, dtype=torch.long))
        self.register_buffer("leaf", torch.tensor(info["leaves"], dtype=torch.bool))
        self.gated = bool(info["gated"])

    @property
    def backbone(self) -> nn.Module:
        return self.segmenter.backbone  # type: ignore[return-value]

    def group_of(self, level: str) -> torch.Tensor:
        return getattr(self, f"group_{level}")  # type: ignore[no-any-return]

    def heads(self, level: str) -> list[nn.Module]:
        return [m.heads[level] for m in self.segmenter.modules() if isinstance(m, LevelConv)]

    def levels(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(self.segmenter(x), list(self.sizes.values()), dim=1)
        out = dict(zip(self.sizes, parts, strict=True))
        out["fine"] = out["fine"].masked_fill(~self.leaf.view(1, -1, 1, 1), NEG)
        return out

    def route(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's output: fine logits, masked per pixel to the coarse head's group when
        inference is gated."""
        if not self.gated:
            return out["fine"]
        routed = out["coarse"].argmax(dim=1, keepdim=True)  # [N, 1, H, W]
        allowed = self.group_of("coarse").view(1, -1, 1, 1) == routed  # [N, C, H, W]
        return out["fine"].masked_fill(~allowed, NEG)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.route(self.levels(x))


def target_index(classes: list[str], info: dict[str, Any]) -> dict[str, list[int]]:
    """Per group level, each class's target group (-1: none). A leaf's group is its ancestor's;
    a pixel of a group class (a mask painted with "G") is that group at G's own level."""
    return {
        level: [
            names.index(c) if c in names else g
            for c, g in zip(classes, info["class_group"][level], strict=True)
        ]
        for level, names in info["groups"].items()
    }


def level_lookup(index: torch.Tensor) -> torch.Tensor:
    """[256] map from a mask value (a class index or 255) to the level's target (a group
    index, 255 for ignore and for classes outside the level)."""
    table = torch.full((256,), IGNORE, dtype=torch.long, device=index.device)
    table[: len(index)] = torch.where(index >= 0, index, IGNORE)
    return table


def violations(net: HierarchicalSegmenter, fine: torch.Tensor, coarse: torch.Tensor) -> int:
    """Pixels whose predicted fine class lies outside the coarse head's predicted group."""
    return int((net.group_of("coarse")[fine] != coarse).sum())


class HierarchicalSegmentationModule(SegmentationModule):
    def build_network(
        self, config: dict[str, Any], classes: list[str], info: dict[str, Any], pretrained: bool
    ) -> tuple[nn.Module, str]:
        model = HierarchicalSegmenter(
            config["model"],
            len(classes),
            info["hierarchy"],
            width=config.get("decoder_channels"),
            pretrained=pretrained,
        )
        return model, model.weights_note

    def __init__(self, config: dict[str, Any], classes: list[str], info: dict[str, Any]) -> None:
        super().__init__(config, classes, info)
        self.weights = dict(config["hierarchy"]["loss_weights"])
        self.plan = stage_plan(config, 1.0)
        self.target_index = {
            lv: torch.tensor(index)
            for lv, index in target_index(classes, info["hierarchy"]).items()
        }
        self._levels: dict[str, PixelMetrics] = {}
        self._violations = 0

    @property
    def net(self) -> HierarchicalSegmenter:
        return self.model  # type: ignore[return-value]

    def stage(self) -> dict[str, Any]:
        return stage_at(self.plan, epoch=int(self.current_epoch))

    def checkpoint_stage(self) -> str | None:
        return stage_label(self.plan, self.stage())

    def targets(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each level's per-pixel target; the fine one ignores pixels of group classes."""
        y = y.long()
        out = {lv: level_lookup(index.to(y.device))[y] for lv, index in self.target_index.items()}
        classes = torch.arange(len(self.net.leaf), device=y.device)
        out["fine"] = level_lookup(torch.where(self.net.leaf, classes, -1))[y]
        return out

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        x, y = at_least_two(x, y)
        out = self.net.levels(x)
        targets = self.targets(y)
        parts: dict[str, torch.Tensor] = {}
        for level in self.stage()["active"]:
            logits, weights = out[level], None
            if level == "fine":  # a pixel's fine logits compete within its true coarse group
                allowed = self.net.group_of("coarse").view(1, -1, 1, 1) == targets[
                    "coarse"
                ].unsqueeze(1)
                logits, weights = logits.masked_fill(~allowed, NEG), self.class_weights
            parts[level], _ = segmentation_loss(
                logits, targets[level], dice_weight=self.dice_weight, weights=weights
            )
        loss: torch.Tensor = sum(self.weights[lv] * value for lv, value in parts.items())  # type: ignore[assignment]
        self.last_loss = float(loss.detach())
        self.loss_parts = {f"{lv}_loss": float(v.detach()) for lv, v in parts.items()}
        return loss

    def on_train_epoch_start(self) -> None:
        fresh_optimizer_at_boundary(self, self.stage())

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Named groups for the curriculum: backbone, decoder (the rest of the segmenter) and
        one per level's heads."""
        heads = {lv: self.net.heads(lv) for lv in self.net.sizes}
        taken = {id(p) for modules in heads.values() for m in modules for p in m.parameters()}
        backbone = [p for p in self.net.backbone.parameters() if p.requires_grad]
        taken |= {id(p) for p in backbone}
        decoder = [p for p in self.net.parameters() if p.requires_grad and id(p) not in taken]
        groups = [{"params": backbone, "name": "backbone"}, {"params": decoder, "name": "decoder"}]
        groups += [
            {"params": [p for m in modules for p in m.parameters()], "name": lv}
            for lv, modules in heads.items()
        ]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> Any:
        return staged_optimizers(self, super().configure_optimizers())

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._levels = {
            lv: PixelMetrics(n, None) for lv, n in self.net.sizes.items() if lv != "fine"
        }
        self._violations = 0

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y, _ = batch
        net: HierarchicalSegmenter = self.inference_model()  # type: ignore[assignment]
        out = net.levels(x)
        fine = net.route(out).argmax(dim=1)
        assert self._metrics is not None
        self._metrics.update(fine, y)
        targets = self.targets(y)
        for level, metrics in self._levels.items():
            metrics.update(out[level].argmax(dim=1), targets[level])
        self._violations += violations(net, fine, out["coarse"].argmax(dim=1))

    def on_validation_epoch_end(self) -> None:
        levels = {lv: m.compute().get("miou") for lv, m in self._levels.items()}
        super().on_validation_epoch_end()
        if not self.val_metrics:
            return
        for level, value in levels.items():
            if value is not None:
                self.val_metrics[f"{level}_miou"] = float(value)
        self.val_metrics["violations"] = float(self._violations)
        self.val_metrics["stage"] = float(self.plan.index(self.stage()) + 1)
