"""The dual-head network: one registered backbone's multi-scale features feed the DeepLabV3+
decoder of the segmentation task (workers/ml/tasks/segmentation/models.py; a single-map
backbone, a DINOv3 ViT, through its simple pyramid, `neck`, which trains with the decoder) and
a classification head (workers/ml/heads.py) on the backbone's image embedding, as the flat
classifier's (a CNN's coarsest level pooled, a ViT's CLS token), from the same pass.

`forward` returns the class logits alone, so classification's evaluation, export parity and
decoder treat the network as a flat classifier; `both` gives (class logits, segmentation
logits at the input size) for training, the segmentation metrics, the gate and export.
Segmentation logits: K channels (independent sigmoids) or, for exclusive channels, K + 1
(softmax, background first)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from app.tasks.dual_head import PREFIX
from workers.ml.backbones import build_backbone
from workers.ml.heads import ClassificationHead
from workers.ml.tasks.segmentation.models import plus_head


class DualHeadNet(nn.Module):
    def __init__(
        self,
        model_id: str,
        num_classes: int,
        seg: dict[str, Any],
        *,
        width: int = 256,
        pretrained: bool = False,
        arch: dict[str, Any] | None = None,
    ) -> None:
        """`arch`: a checkpoint's recorded backbone architecture (DINOv3 sizes)."""
        super().__init__()
        self.backbone, self.weights_note = build_backbone(
            model_id.removeprefix(PREFIX), pretrained=pretrained, arch=arch
        )
        channels = len(seg["channels"]) + (1 if seg["exclusive"] else 0)
        self.exclusive = bool(seg["exclusive"])
        # None for a multi-scale backbone: its state keys stay those of earlier checkpoints
        self.neck, self.decoder = plus_head(
            self.backbone, channels, width, low_channels=max(8, min(48, width // 4))
        )
        self.head = ClassificationHead(self.backbone.embed_channels, num_classes)

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(class logits, segmentation logits at the input size, the image embedding the
        class head reads — the gate's familiarity rule compares it with training's)."""
        features, embedding = self.backbone.features_and_embed(x)
        if self.neck is not None:
            features = self.neck(features)
        seg = self.decoder(features)
        seg = F.interpolate(seg, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(embedding), seg, embedding.flatten(1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The image embedding alone (the backbone's pass, no decoder)."""
        return self.backbone.features_and_embed(x)[1].flatten(1)

    def both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, seg, _ = self.outputs(x)
        return logits, seg

    def channel_probs(self, seg: torch.Tensor) -> torch.Tensor:
        """Per-foreground-channel probabilities [N, K, H, W] (softmax drops background)."""
        return seg.softmax(dim=1)[:, 1:] if self.exclusive else seg.sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.both(x)[0]


class ExportedDualHead(nn.Module):
    """Both heads as named outputs: class logits, per-channel probabilities and the image
    embedding (for the gate's familiarity rule)."""

    def __init__(self, net: DualHeadNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, seg, embedding = self.net.outputs(x)
        return logits, self.net.channel_probs(seg), embedding
