"""Mask R-CNN networks by catalog id: a small one that learns from random initialisation on a
CPU (the detection task's five-stage CNN + FPN, slim box and mask heads), the same slim heads
on a DINOv3 backbone (`maskrcnn_dinov3_*`: detection's DINOv3 pyramid + FPN at strides 8-32),
and torchvision's ResNet-50 FPN Mask R-CNN.

As for detection (workers/ml/tasks/detection/models.py), every network takes images already
resized to SxS and normalised, so the internal transform uses identity normalisation and
min_size = max_size = S (no 800 px upsampling), and anchors are scaled to S. Labels inside
the networks are class index + 1 (0 = background). Masks come out as [N, 1, S, S]
probabilities pasted into the input image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from workers.ml.tasks.detection.models import (
    IDENTITY,
    LEVELS,
    Family,
    SmallDetectionBackbone,
    _heads,
    _torchvision,
)

Builder = Callable[[int, int, dict[str, Any], bool], tuple[nn.Module, str]]
_MODELS: dict[str, Builder] = {}
DINOV3_PREFIX = "maskrcnn_"  # + a DINOv3 backbone id (app/catalog/derived.py lists the same)


def model_ids() -> set[str]:
    return set(_MODELS)


def build_instance_model(
    model_id: str,
    num_classes: int,
    image_size: int,
    config: dict[str, Any],
    pretrained: bool,
    arch: dict[str, Any] | None = None,
) -> tuple[nn.Module, str]:
    """(network, weights note) for `num_classes` classes (background added inside); `arch`:
    a checkpoint's recorded backbone architecture (DINOv3 sizes)."""
    if model_id not in _MODELS:
        raise ValueError(
            f"unknown instance model {model_id!r}; known: {', '.join(sorted(_MODELS))}"
        )
    if arch:
        return _MODELS[model_id](num_classes, image_size, config, pretrained, arch=arch)  # type: ignore[call-arg]
    return _MODELS[model_id](num_classes, image_size, config, pretrained)


def small_maskrcnn(
    classes: int, size: int, config: dict[str, Any], backbone: nn.Module | None = None
) -> nn.Module:
    """Mask R-CNN on the small detection backbone (FPN levels at strides 8, 16, 32): anchors of
    8-32 px at 96 px scaled to S in three aspect ratios, a 256-wide box head and a two-layer
    64-channel mask head, so a step costs a fraction of the ResNet-50 model's."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    backbone = backbone or SmallDetectionBackbone()  # FPN maps "0"-"2" at strides 8-32
    channels = int(backbone.out_channels)
    heads = _heads(config)
    scale = size / 96
    anchors = AnchorGenerator(
        sizes=tuple((8 * scale * 2**k,) for k in range(3)), aspect_ratios=((0.5, 1.0, 2.0),) * 3
    )
    names = ["0", "1", "2"]
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=size,
        max_size=size,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=600,
        rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=150,
        rpn_batch_size_per_image=128,
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2),
        box_head=TwoMLPHead(channels * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, classes + 1),
        box_batch_size_per_image=128,
        box_score_thresh=heads["score"],
        box_nms_thresh=heads["nms"],
        box_detections_per_img=heads["detections"],
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
        mask_head=MaskRCNNHeads(channels, [64, 64], 1),
        mask_predictor=MaskRCNNPredictor(64, 64, classes + 1),
        **IDENTITY,
    )


def register(model_id: str) -> Callable[[Builder], Builder]:
    def decorate(builder: Builder) -> Builder:
        _MODELS[model_id] = builder
        return builder

    return decorate


@register("maskrcnn_small")
def _maskrcnn_small(classes: int, size: int, config: dict[str, Any], pretrained: bool):  # type: ignore[no-untyped-def]
    return small_maskrcnn(classes, size, config), "random-init"


def _maskrcnn_dinov3(model_id: str) -> Builder:
    def build(
        classes: int,
        size: int,
        config: dict[str, Any],
        pretrained: bool,
        arch: dict[str, Any] | None = None,
    ) -> tuple[nn.Module, str]:
        from workers.ml.backbones import build_backbone
        from workers.ml.tasks.detection.dinov3 import DINOv3Pyramid

        body, note = build_backbone(model_id, pretrained=pretrained, arch=arch)
        if note.startswith("pretrained:"):
            note = "pretrained-backbone:" + note.split(":", 1)[1]
        return small_maskrcnn(classes, size, config, DINOv3Pyramid(body)), note

    return build


def _register_dinov3() -> None:
    from workers.ml.dinov3 import dinov3_ids

    for backbone_id in dinov3_ids():
        register(f"{DINOV3_PREFIX}{backbone_id}")(_maskrcnn_dinov3(backbone_id))


# torchvision's Mask R-CNN takes Faster R-CNN's keywords: the detection builder serves it.
register("maskrcnn_resnet50_fpn")(
    _torchvision(
        Family(
            "maskrcnn_resnet50_fpn",
            "MaskRCNN_ResNet50_FPN_Weights",
            "ResNet50_Weights",
            LEVELS,
            (0.5, 1.0, 2.0),
            two_stage=True,
        )
    )
)
_register_dinov3()
