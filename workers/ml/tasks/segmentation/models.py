"""Segmentation networks: forward(x NCHW normalised) → logits [N, C, H, W] at the input size.

- `unet_small`: a small U-Net (widths w, 2w, 4w, 8w; w = decoder width, 16 by default,
  ~0.5 M parameters) that learns from random initialisation on a CPU in minutes.
- `deeplabv3plus_<backbone>`: DeepLabV3+ written here on any registered multi-scale backbone
  (workers/ml/backbones.py): ASPP with rates 6/12/18 on the coarsest level plus a decoder
  that joins the stride-4 (or finest) level through a 48-channel skip. `DeepLabV3PlusHead`
  takes any backbone's feature list, so other heads (the segmentation gate, the dual-head
  model) reuse it.
- torchvision's FCN ResNet-50, DeepLabV3 ResNet-50 / MobileNetV3-Large and LRASPP
  MobileNetV3-Large, with their heads rebuilt when a decoder width is asked for.

Pretrained weights come from local files only (STUDIO_WEIGHTS_DIR or the torch hub cache):
the full torchvision segmentation weights when present (all but the class layer), else the
backbone's ImageNet weights, else random initialisation; the note says which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from workers.ml.backbones import (
    Backbone,
    backbone_ids,
    build_backbone,
    find_pretrained,
)
from workers.ml.pyramid import SimplePyramid

PLUS_PREFIX = "deeplabv3plus_"
ASPP_RATES = (6, 12, 18)


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Encoder of four double-conv stages (max-pooled), decoder of bilinear upsampling, skip
    concatenation and double convs. Any input size works (each upsampling matches its skip)."""

    def __init__(self, num_classes: int, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        stages = []
        cin = in_channels
        for w in widths:
            stages.append(nn.Sequential(_conv_bn_relu(cin, w), _conv_bn_relu(w, w)))
            cin = w
        self.backbone = nn.ModuleList(stages)  # the encoder ("backbone" for freezing)
        self.up = nn.ModuleList(
            nn.Sequential(
                _conv_bn_relu(widths[i + 1] + widths[i], widths[i]),
                _conv_bn_relu(widths[i], widths[i]),
            )
            for i in reversed(range(len(widths) - 1))
        )
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, stage in enumerate(self.backbone):
            if index:
                x = F.max_pool2d(x, 2)
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.classifier(x)  # type: ignore[no-any-return]


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ decoder on a backbone's feature list (finest first): ASPP (rates 6/12/18 and
    image pooling) on the last level, a 1x1 projection of the low-level features (the level at
    stride 4, else the finest) to 48 channels, concatenation at the low level's resolution,
    two 3x3 convs of `channels`, and a 1x1 classifier. Returns logits at the low level's
    resolution; the caller upsamples to the input size."""

    def __init__(
        self,
        in_channels: list[int],
        strides: list[int],
        num_classes: int,
        channels: int = 256,
        low_channels: int = 48,
        rates: tuple[int, ...] = ASPP_RATES,
    ) -> None:
        from torchvision.models.segmentation.deeplabv3 import ASPP

        super().__init__()
        self.low_level = strides.index(4) if 4 in strides else 0
        self.aspp = ASPP(in_channels[-1], list(rates), out_channels=channels)
        self.project = _conv_bn_relu(in_channels[self.low_level], low_channels, kernel=1)
        self.fuse = nn.Sequential(
            _conv_bn_relu(channels + low_channels, channels),
            _conv_bn_relu(channels, channels),
        )
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        low = self.project(features[self.low_level])
        high = self.aspp(features[-1])
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([high, low], dim=1)))  # type: ignore[no-any-return]


def plus_head(
    backbone: Backbone, num_classes: int, width: int, low_channels: int = 48
) -> tuple[SimplePyramid | None, DeepLabV3PlusHead]:
    """DeepLabV3+ on a backbone: the decoder, and the neck it needs first when the backbone
    gives a single map (a simple pyramid at strides 4/8/16: its skip level and ASPP level)."""
    levels: Backbone | SimplePyramid = backbone
    neck = None
    if len(backbone.strides) == 1:
        neck = levels = SimplePyramid(backbone.out_channels[0], backbone.strides[0], (4, 8, 16))
    head = DeepLabV3PlusHead(
        list(levels.out_channels), list(levels.strides), num_classes, width, low_channels
    )
    return neck, head


class BackboneSegmenter(nn.Module):
    """A registered backbone plus a head over its feature list; logits at the input size. A
    single-map backbone (a DINOv3 ViT's 1/16 grid) goes through a simple pyramid (`neck`, at
    strides 4/8/16: the decoder's skip level and its ASPP level), which trains with the head."""

    def __init__(self, backbone: Backbone, head: nn.Module, neck: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        if self.neck is not None:
            features = self.neck(features)
        logits = self.head(features)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


class TorchvisionSegmenter(nn.Module):
    """torchvision's segmentation models return {"out": logits}; export and training want the
    tensor alone."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.backbone = net.backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]  # type: ignore[no-any-return]


# --- torchvision models --------------------------------------------------------------------

# id → (builder name, segmentation weights enum, backbone id in workers.ml.backbones)
TORCHVISION = {
    "fcn_resnet50": ("fcn_resnet50", "FCN_ResNet50_Weights", "resnet50"),
    "deeplabv3_resnet50": ("deeplabv3_resnet50", "DeepLabV3_ResNet50_Weights", "resnet50"),
    "deeplabv3_mobilenet_v3_large": (
        "deeplabv3_mobilenet_v3_large",
        "DeepLabV3_MobileNet_V3_Large_Weights",
        "mobilenet_v3_large",
    ),
    "lraspp_mobilenet_v3_large": (
        "lraspp_mobilenet_v3_large",
        "LRASPP_MobileNet_V3_Large_Weights",
        "mobilenet_v3_large",
    ),
}


def _load_matching(module: nn.Module, state: dict[str, torch.Tensor], prefix: str = "") -> int:
    """Copy the tensors of `state` (keys optionally under `prefix`) whose names and shapes
    match; returns how many were loaded."""
    own = module.state_dict()
    picked = {}
    for key, value in state.items():
        if prefix and not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        if name in own and own[name].shape == value.shape:
            picked[name] = value
    module.load_state_dict(picked, strict=False)
    return len(picked)


def _rebuild_head(model_id: str, net: nn.Module, num_classes: int, width: int) -> None:
    from torchvision.models.segmentation.deeplabv3 import ASPP
    from torchvision.models.segmentation.lraspp import LRASPPHead

    if model_id.startswith("lraspp"):
        old = net.classifier
        net.classifier = LRASPPHead(
            old.low_classifier.in_channels, old.cbr[0].in_channels, num_classes, width
        )
        return
    first = next(m for m in net.classifier.modules() if isinstance(m, nn.Conv2d))
    cin = first.in_channels
    if model_id.startswith("fcn"):
        net.classifier = nn.Sequential(
            _conv_bn_relu(cin, width), nn.Dropout(0.1), nn.Conv2d(width, num_classes, 1)
        )
    else:
        net.classifier = nn.Sequential(
            ASPP(cin, [12, 24, 36], out_channels=width),
            _conv_bn_relu(width, width),
            nn.Conv2d(width, num_classes, 1),
        )


def _torchvision(model_id: str, num_classes: int, width: int | None, pretrained: bool) -> Any:
    import torchvision.models.segmentation as tvs

    builder, _weights_enum, backbone_id = TORCHVISION[model_id]
    kwargs: dict[str, Any] = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
    if not model_id.startswith("lraspp"):
        kwargs["aux_loss"] = False
    net = getattr(tvs, builder)(**kwargs)
    if width is not None:
        _rebuild_head(model_id, net, num_classes, width)
    note = "random-init"
    if pretrained:
        path = find_pretrained(model_id)  # the segmenter's own (COCO/VOC) weights
        if path is not None:
            state = torch.load(path, map_location="cpu", weights_only=True)
            # The class layer (21 VOC classes) never matches; a rebuilt head loads nothing.
            _load_matching(net, state)
            note = f"pretrained:{path.name}"
        else:
            path = find_pretrained(backbone_id)
            if path is not None:
                state = torch.load(path, map_location="cpu", weights_only=True)
                prefix = "features." if backbone_id.startswith("mobilenet") else ""
                _load_matching(net.backbone, state, prefix)
                note = f"pretrained-backbone:{path.name}"
    return TorchvisionSegmenter(net), note


# --- the builder ---------------------------------------------------------------------------

Builder = Callable[[int, "int | None", bool], "tuple[nn.Module, str]"]


def segmenter_ids() -> set[str]:
    plus = (PLUS_PREFIX + b for b in backbone_ids("dense"))
    return {"unet_small", *TORCHVISION, *plus}


def build_segmenter(
    model_id: str,
    num_classes: int,
    *,
    width: int | None = None,
    pretrained: bool = False,
    arch: dict[str, Any] | None = None,
) -> tuple[nn.Module, str]:
    """The network for a catalog id and its weights note ("random-init", "pretrained:<file>",
    "pretrained-backbone:<file>"); `arch`: a checkpoint's recorded backbone architecture."""
    if model_id == "unet_small":
        return UNet(num_classes, width or 16), "random-init"
    if model_id in TORCHVISION:
        return _torchvision(model_id, num_classes, width, pretrained)  # type: ignore[no-any-return]
    if model_id.startswith(PLUS_PREFIX) and model_id[len(PLUS_PREFIX) :] in backbone_ids("dense"):
        backbone, note = build_backbone(
            model_id[len(PLUS_PREFIX) :], pretrained=pretrained, arch=arch
        )
        if note.startswith("pretrained:"):
            note = "pretrained-backbone:" + note.split(":", 1)[1]
        neck, head = plus_head(backbone, num_classes, width or 256)
        return BackboneSegmenter(backbone, head, neck), note
    raise ValueError(f"unknown segmentation model {model_id!r}; known: {sorted(segmenter_ids())}")
