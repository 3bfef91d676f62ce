"""Rotated FCOS: an anchor-free detector whose box branch regresses (cx, cy, w, h, θ).

Every location of three FPN levels (strides 8, 16, 32) predicts class logits, a centre-ness
logit and a rotated box: centre offset (in strides), log width and log height (in strides) and
the angle in radians. The box loss is KLD between the boxes as 2-D Gaussians (mmrotate's
`KLDLoss`, log1p, τ = 1): a Gaussian is the same for θ and θ + π and for (w, h, θ) and
(h, w, θ + π/2), so the loss has none of the angle-boundary and edge-swap discontinuities of
a smooth-L1 on (w, h, θ), and it weighs centre, size and angle errors by the box's own shape
and scale. The angle output is therefore free-running; detections are normalised to le90
when decoded (geometry.py).

The network takes a batch already resized to SxS and normalised, and returns its raw,
per-location outputs (`obb` decoded to input pixels, `logits`, `centerness`); scoring,
class-wise rotated NMS and the le90 normalisation run in numpy (geometry.postprocess) for
the PyTorch evaluation and the exported model alike.

Backbones: the small CNN + FPN of the detection task (learns from scratch on a CPU), or a
registered backbone (ResNet-18) with an FPN over its stride 8/16/32 maps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from workers.ml.backbones import Backbone, build_backbone
from workers.ml.tasks.detection.models import SmallDetectionBackbone

STRIDES = (8, 16, 32)
Builder = Callable[[int, int, bool], tuple[nn.Module, str]]
_MODELS: dict[str, Builder] = {}


def register(model_id: str) -> Callable[[Builder], Builder]:
    def decorate(builder: Builder) -> Builder:
        _MODELS[model_id] = builder
        return builder

    return decorate


def model_ids() -> set[str]:
    return set(_MODELS)


def build_oriented(
    model_id: str, num_classes: int, image_size: int, pretrained: bool
) -> tuple[nn.Module, str]:
    if model_id not in _MODELS:
        raise ValueError(f"unknown oriented detector {model_id!r}; known: {sorted(_MODELS)}")
    return _MODELS[model_id](num_classes, image_size, pretrained)


class BackbonePyramid(nn.Module):
    """A registered backbone's stride 8, 16 and 32 maps under an FPN of `channels`."""

    def __init__(self, backbone: Backbone, channels: int = 64) -> None:
        from torchvision.ops import FeaturePyramidNetwork

        super().__init__()
        self.body = backbone
        self.taps = [backbone.strides.index(s) for s in STRIDES]
        self.fpn = FeaturePyramidNetwork([backbone.out_channels[i] for i in self.taps], channels)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.body(x)
        return self.fpn({str(k): maps[i] for k, i in enumerate(self.taps)})


def _tower(channels: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class RotatedFCOS(nn.Module):
    """Pyramid (3 levels, `out_channels`) + shared FCOS head with a rotated box branch."""

    def __init__(self, pyramid: nn.Module, classes: int, image_size: int, depth: int = 2) -> None:
        super().__init__()
        channels = int(pyramid.out_channels)  # type: ignore[arg-type]
        self.pyramid = pyramid
        self.classes = classes
        self.image_size = image_size
        self.cls_tower = _tower(channels, depth)
        self.reg_tower = _tower(channels, depth)
        self.cls_logits = nn.Conv2d(channels, classes, 3, padding=1)
        self.box = nn.Conv2d(channels, 5, 3, padding=1)  # dx, dy, log w, log h, angle
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.level_scale = nn.Parameter(torch.ones(len(STRIDES)))
        for conv in (self.cls_logits, self.box, self.centerness):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
        nn.init.constant_(self.cls_logits.bias, -math.log(99))  # type: ignore[arg-type]
        points, strides = location_grid(image_size)
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("strides", strides, persistent=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"obb": [B, N, 5] (cx, cy, w, h in input pixels, θ radians), "logits": [B, N, C],
        "centerness": [B, N]} over the N locations of `location_grid`."""
        feats = self.pyramid(x)
        levels = list(feats.values()) if isinstance(feats, dict) else list(feats)
        logits, boxes, centers = [], [], []
        for k, feat in enumerate(levels):
            cls = self.cls_tower(feat)
            reg = self.reg_tower(feat)
            batch = feat.shape[0]
            logits.append(self.cls_logits(cls).flatten(2).transpose(1, 2))
            boxes.append((self.box(reg) * self.level_scale[k]).flatten(2).transpose(1, 2))
            centers.append(self.centerness(reg).reshape(batch, -1))
        raw = torch.cat(boxes, 1)
        stride = self.strides[None, :, None]
        centre = self.points[None] + raw[..., :2] * stride
        size = torch.exp(raw[..., 2:4].clamp(-6.0, 6.0)) * stride
        return {
            "obb": torch.cat([centre, size, raw[..., 4:5]], -1),
            "logits": torch.cat(logits, 1),
            "centerness": torch.cat(centers, 1),
        }


def location_grid(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres [N, 2] (x, y in input pixels) and strides [N] of every location, level by
    level, row-major: the order the head flattens its maps in."""
    points, strides = [], []
    for stride in STRIDES:
        side = math.ceil(image_size / stride)
        coords = torch.arange(side, dtype=torch.float32) * stride + stride / 2
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1))
        strides.append(torch.full((side * side,), float(stride)))
    return torch.cat(points), torch.cat(strides)


def scores_of(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """Detection score per location and class: √(class probability * centre-ness), FCOS's."""
    return torch.sqrt(torch.sigmoid(out["logits"]) * torch.sigmoid(out["centerness"])[..., None])


@register("rotated_fcos_small")
def _small(classes: int, size: int, pretrained: bool) -> tuple[nn.Module, str]:
    return RotatedFCOS(SmallDetectionBackbone(), classes, size), "random-init"


@register("rotated_fcos_resnet18")
def _resnet18(classes: int, size: int, pretrained: bool) -> tuple[nn.Module, str]:
    backbone, note = build_backbone("resnet18", pretrained=pretrained)
    return RotatedFCOS(BackbonePyramid(backbone, 96), classes, size), note
