"""A simple feature pyramid (ViTDet) for backbones with a single feature map (a DINOv3 ViT's
1/16 patch grid): dense heads (detection's FPN, segmentation's DeepLabV3+) want several
strides, and ViTDet showed that deconvolutions and strided convolutions of the last map serve
as well as a hierarchical backbone. The pyramid belongs to the head: it trains when the
backbone is frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _level(channels: int, stride: int, target: int) -> tuple[nn.Module, int]:
    """One level: 2x transposed convs (halving the width each) to go finer, 3x3 stride-2
    convs to go coarser, the map itself at its own stride."""
    if target == stride:
        return nn.Identity(), channels
    layers: list[nn.Module] = []
    width = channels
    if target < stride:
        factor = stride // target
        while factor > 1:
            if layers:
                layers.append(nn.GELU())
            layers.append(nn.ConvTranspose2d(width, width // 2, 2, stride=2))
            width //= 2
            factor //= 2
    else:
        factor = target // stride
        while factor > 1:
            if layers:
                layers.append(nn.GELU())
            layers.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
            factor //= 2
    return (layers[0] if len(layers) == 1 else nn.Sequential(*layers)), width


class SimplePyramid(nn.Module):
    """forward(features) -> one map per stride in `strides`, built from the last feature map
    (of `channels` channels at `stride`); `out_channels` and `strides` as a backbone's."""

    def __init__(self, channels: int, stride: int, strides: Sequence[int]) -> None:
        super().__init__()
        built = [_level(channels, stride, target) for target in strides]
        self.levels = nn.ModuleList(module for module, _ in built)
        self.out_channels = [width for _, width in built]
        self.strides = list(strides)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        grid = features[-1]
        return [level(grid) for level in self.levels]
