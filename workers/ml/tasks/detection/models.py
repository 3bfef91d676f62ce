"""Detection networks by catalog id: torchvision's detectors sized for the experiment, and a
small FCOS that learns from random initialisation on a CPU in minutes.

Every detector here takes a batch of images already resized to SxS and normalised (the shared
eval transform), so its internal transform is set to identity normalisation and
min_size = max_size = S: torchvision would otherwise resize every image to 800 px (NOTES.md:
40x slower at small sizes). Anchor sizes (and FCOS's level ranges) assume 800 px images in
torchvision; they are scaled to S so objects keep their relative size. Labels inside the
networks are class index + 1 (0 is background for every torchvision detector).

Pretrained weights, when present locally (STUDIO_WEIGHTS_DIR or the torch hub cache): the
detector's COCO weights minus the class-specific layers, else the backbone's ImageNet
weights, else random initialisation; the weights note says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from workers.ml.backbones import find_weight_file, torchvision_weight_names

Builder = Callable[[int, int, dict[str, Any], bool], tuple[nn.Module, str]]
_DETECTORS: dict[str, Builder] = {}
IDENTITY = {"image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0]}


def register_detector(model_id: str) -> Callable[[Builder], Builder]:
    def decorate(builder: Builder) -> Builder:
        _DETECTORS[model_id] = builder
        return builder

    return decorate


def detector_ids() -> set[str]:
    return set(_DETECTORS)


def build_detector(
    model_id: str, num_classes: int, image_size: int, config: dict[str, Any], pretrained: bool
) -> tuple[nn.Module, str]:
    """(network, weights note) for `num_classes` classes (background added inside)."""
    if model_id not in _DETECTORS:
        raise ValueError(f"unknown detector {model_id!r}; known: {', '.join(sorted(_DETECTORS))}")
    return _DETECTORS[model_id](num_classes, image_size, config, pretrained)


def _heads(config: dict[str, Any]) -> dict[str, float | int]:
    return {
        "nms": float(config.get("nms_iou", 0.5)),
        "detections": int(config.get("max_detections", 100)),
        "score": min(0.05, float(config.get("score_threshold", 0.05))),
    }


def _scaled(sizes: tuple[tuple[float, ...], ...], image_size: int, base: int = 800):  # type: ignore[no-untyped-def]
    factor = image_size / base
    return tuple(tuple(max(2.0, s * factor) for s in level) for level in sizes)


def load_matching(
    model: nn.Module, state: dict[str, torch.Tensor], prefix: str = "", strip: str = ""
) -> int:
    """Load the tensors of `state` whose name (`strip` removed, `prefix` added) and shape
    match; returns how many. Class-specific layers of COCO weights differ in shape and keep
    their random init."""
    own = model.state_dict()
    picked = {}
    for key, value in state.items():
        name = prefix + (key[len(strip) :] if strip and key.startswith(strip) else key)
        if name in own and own[name].shape == value.shape:
            picked[name] = value
    model.load_state_dict(picked, strict=False)
    return len(picked)


def _pretrained(
    model: nn.Module,
    detector_enum: str,
    backbone_enum: str | None = None,
    prefix: str = "backbone.body.",
    strip: str = "",
) -> str:
    """COCO detector weights if present locally, else the backbone's ImageNet weights."""
    path = find_weight_file(torchvision_weight_names(detector_enum))
    if path is not None:
        load_matching(model, torch.load(path, map_location="cpu", weights_only=True))
        return f"pretrained:{path.name}"
    if backbone_enum is not None:
        path = find_weight_file(torchvision_weight_names(backbone_enum))
        if path is not None:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if load_matching(model, state, prefix, strip):
                return f"pretrained-backbone:{path.name}"
    return "random-init"


# --- the small CPU default -----------------------------------------------------------------


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallDetectionBackbone(nn.Module):
    """Five conv stages (strides 2-32) and an FPN over strides 8, 16 and 32: ~1 M parameters,
    small enough to learn shapes from scratch on a CPU in minutes (NOTES.md measured FCOS on
    such a backbone at mAP50 0.81-0.86 within ~700 steps at 96 px)."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 80, 128, 160), fpn: int = 64) -> None:
        from torchvision.ops import FeaturePyramidNetwork

        super().__init__()
        stages = []
        cin = 3
        for width in widths:
            stages.append(nn.Sequential(_conv(cin, width, 2), _conv(width, width)))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.fpn = FeaturePyramidNetwork(list(widths[2:]), fpn)
        self.out_channels = fpn

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        taps: dict[str, torch.Tensor] = {}
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index >= 2:
                taps[str(index - 2)] = x
        return self.fpn(taps)


@register_detector("fcos_small")
def _fcos_small(classes: int, size: int, config: dict[str, Any], pretrained: bool):  # type: ignore[no-untyped-def]
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    heads = _heads(config)
    scale = size / 96
    anchors = AnchorGenerator(
        sizes=tuple((8 * scale * 2**k,) for k in range(3)), aspect_ratios=((1.0,),) * 3
    )
    model = FCOS(
        SmallDetectionBackbone(),
        num_classes=classes + 1,
        min_size=size,
        max_size=size,
        anchor_generator=anchors,
        score_thresh=heads["score"],
        nms_thresh=heads["nms"],
        detections_per_img=heads["detections"],
        topk_candidates=1000,
        **IDENTITY,
    )
    return model, "random-init"


# --- torchvision's detectors ---------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """How to build one of torchvision's FPN detectors for the experiment: its builder, its
    weights (detector, backbone), and torchvision's anchors for 800 px images."""

    builder: str
    weights: str
    backbone_weights: str
    anchors: tuple[tuple[float, ...], ...]
    ratios: tuple[float, ...]
    two_stage: bool = False  # Faster R-CNN: box_* keyword names, anchors on the RPN
    octaves: bool = False  # RetinaNet: three sizes per octave at every level
    strip: str = ""  # prefix of the backbone's ImageNet keys that the detector drops


LEVELS = ((32,), (64,), (128,), (256,), (512,))
TORCHVISION = {
    "fasterrcnn_resnet50_fpn": Family(
        "fasterrcnn_resnet50_fpn",
        "FasterRCNN_ResNet50_FPN_Weights",
        "ResNet50_Weights",
        LEVELS,
        (0.5, 1.0, 2.0),
        two_stage=True,
    ),
    "fasterrcnn_mobilenet_v3_large_fpn": Family(
        "fasterrcnn_mobilenet_v3_large_fpn",
        "FasterRCNN_MobileNet_V3_Large_FPN_Weights",
        "MobileNet_V3_Large_Weights",
        ((32, 64, 128, 256, 512),) * 3,
        (0.5, 1.0, 2.0),
        two_stage=True,
        strip="features.",
    ),
    "fcos_resnet50_fpn": Family(
        "fcos_resnet50_fpn",
        "FCOS_ResNet50_FPN_Weights",
        "ResNet50_Weights",
        ((8,), (16,), (32,), (64,), (128,)),
        (1.0,),
    ),
    "retinanet_resnet50_fpn": Family(
        "retinanet_resnet50_fpn",
        "RetinaNet_ResNet50_FPN_Weights",
        "ResNet50_Weights",
        LEVELS,
        (0.5, 1.0, 2.0),
        octaves=True,
    ),
}


def _torchvision(family: Family) -> Builder:
    def build(classes: int, size: int, config: dict[str, Any], pretrained: bool):  # type: ignore[no-untyped-def]
        import torchvision.models.detection as tvd
        from torchvision.models.detection.anchor_utils import AnchorGenerator

        heads = _heads(config)
        prefix = "box_" if family.two_stage else ""
        model = getattr(tvd, family.builder)(
            weights=None,
            weights_backbone=None,
            num_classes=classes + 1,
            min_size=size,
            max_size=size,
            **{
                f"{prefix}score_thresh": heads["score"],
                f"{prefix}nms_thresh": heads["nms"],
                f"{prefix}detections_per_img": heads["detections"],
            },
            **IDENTITY,
        )
        sizes = _scaled(family.anchors, size)
        if family.octaves:
            sizes = tuple(
                tuple(s * 2 ** (k / 3) for k in range(3) for s in level) for level in sizes
            )
        # Same number of anchors per location as the builder's, scaled to the image size.
        anchors = AnchorGenerator(sizes, (family.ratios,) * len(sizes))
        if family.two_stage:
            model.rpn.anchor_generator = anchors
        else:
            model.anchor_generator = anchors
        if not pretrained:
            return model, "random-init"
        return model, _pretrained(
            model, family.weights, family.backbone_weights, strip=family.strip
        )

    return build


for _id, _family in TORCHVISION.items():
    register_detector(_id)(_torchvision(_family))


def _ssd_transform(model: nn.Module, size: int) -> None:
    """SSD builders fix their input size (300/320): give them the experiment's instead."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    model.transform = GeneralizedRCNNTransform(
        min_size=size, max_size=size, size_divisible=1, fixed_size=(size, size), **IDENTITY
    )


@register_detector("ssd300_vgg16")
def _ssd300(classes: int, size: int, config: dict[str, Any], pretrained: bool):  # type: ignore[no-untyped-def]
    from torchvision.models.detection import ssd300_vgg16

    heads = _heads(config)
    model = ssd300_vgg16(
        weights=None,
        weights_backbone=None,
        num_classes=classes + 1,
        score_thresh=min(0.01, float(heads["score"])),
        nms_thresh=heads["nms"],
        detections_per_img=heads["detections"],
    )
    _ssd_transform(model, size)
    note = _pretrained(model, "SSD300_VGG16_Weights") if pretrained else "random-init"
    return model, note


@register_detector("ssdlite320_mobilenet_v3_large")
def _ssdlite(classes: int, size: int, config: dict[str, Any], pretrained: bool):  # type: ignore[no-untyped-def]
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    heads = _heads(config)
    model = ssdlite320_mobilenet_v3_large(
        weights=None,
        weights_backbone=None,
        num_classes=classes + 1,
        score_thresh=min(0.01, float(heads["score"])),
        nms_thresh=heads["nms"],
        detections_per_img=heads["detections"],
    )
    _ssd_transform(model, size)
    note = (
        _pretrained(model, "SSDLite320_MobileNet_V3_Large_Weights") if pretrained else "random-init"
    )
    return model, note
