"""Heads: take the backbone's feature list and produce task outputs (separate from backbones)."""

from __future__ import annotations

import torch
from torch import nn

from workers.ml.backbones import Backbone, build_backbone


class ClassificationHead(nn.Module):
    """Global average pool of the coarsest level, dropout, linear -> logits."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.pool(features[-1]).flatten(1)
        return self.fc(self.dropout(x))


class Classifier(nn.Module):
    """Backbone + classification head: forward(x NCHW normalized) -> logits [N, num_classes]."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = ClassificationHead(backbone.out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_classifier(
    model_id: str, num_classes: int, *, pretrained: bool
) -> tuple[Classifier, str]:
    backbone, note = build_backbone(model_id, pretrained=pretrained)
    return Classifier(backbone, num_classes), note
