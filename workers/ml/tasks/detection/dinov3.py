"""DINOv3 detectors: the backbone's features through a pyramid and an FPN into the small FCOS.

ViT: a simple feature pyramid (ViTDet, workers/ml/pyramid.py) from its single 1/16 map: a
stride-2 transposed conv to 1/8, the map itself, a stride-2 conv to 1/32. ConvNeXt: its
stages at strides 8-32.
With the recipe's frozen backbone (the DINOv3 default) only the DINOv3 network is frozen
(its last blocks optionally trained); the pyramid, FPN and heads always train.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from workers.ml.backbones import Backbone, build_backbone
from workers.ml.dinov3 import dinov3_ids
from workers.ml.pyramid import SimplePyramid
from workers.ml.tasks.detection.models import register_detector, small_fcos

# Checkpoints saved before the pyramid moved to workers/ml/pyramid.py named its two convs
# `up` and `down`; they are the pyramid's levels 0 (1/8) and 2 (1/32) now.
_OLD_PYRAMID_KEYS = {"up.": "pyramid.levels.0.", "down.": "pyramid.levels.2."}


def _renamed_pyramid_keys(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Loads a DINOv3 detector trained before the rename (the studio never drops a model)."""
    for key in [k for k in state if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        for old, new in _OLD_PYRAMID_KEYS.items():
            if rest.startswith(old):
                state[prefix + new + rest[len(old) :]] = state.pop(key)


class DINOv3Pyramid(nn.Module):
    def __init__(self, body: Backbone, channels: int = 64) -> None:
        from torchvision.ops import FeaturePyramidNetwork

        super().__init__()
        self.body = body
        self.pyramid: SimplePyramid | None = None
        if len(body.strides) == 1:
            self.pyramid = SimplePyramid(body.out_channels[0], body.strides[0], (8, 16, 32))
            levels = self.pyramid.out_channels
        else:
            levels = list(body.out_channels[1:])
        self.fpn = FeaturePyramidNetwork(levels, channels)
        self.out_channels = channels
        self.register_load_state_dict_pre_hook(_renamed_pyramid_keys)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.body(x)
        levels = self.pyramid(features) if self.pyramid is not None else features[1:]
        return self.fpn(OrderedDict((str(i), level) for i, level in enumerate(levels)))  # type: ignore[no-any-return]


def _builder(model_id: str):  # type: ignore[no-untyped-def]
    def build(
        classes: int,
        size: int,
        config: dict[str, Any],
        pretrained: bool,
        arch: dict[str, Any] | None = None,
    ) -> tuple[nn.Module, str]:
        body, note = build_backbone(model_id, pretrained=pretrained, arch=arch)
        return small_fcos(DINOv3Pyramid(body), classes, size, config), note

    return build


for _id in dinov3_ids():
    register_detector(_id)(_builder(_id))
