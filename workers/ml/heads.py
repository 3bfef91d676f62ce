"""Heads: take the backbone's feature list and produce task outputs (separate from backbones)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workers.ml.backbones import Backbone, build_backbone


class ClassificationHead(nn.Module):
    """Dropout and a linear layer on the backbone's image embedding -> logits."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(embedding))


class Classifier(nn.Module):
    """Backbone + classification head: forward(x NCHW normalized) -> logits [N, num_classes]."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = ClassificationHead(backbone.embed_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.embed(x))


def build_classifier(
    model_id: str, num_classes: int, *, pretrained: bool, arch: dict[str, Any] | None = None
) -> tuple[Classifier, str]:
    backbone, note = build_backbone(model_id, pretrained=pretrained, arch=arch)
    return Classifier(backbone, num_classes), note
