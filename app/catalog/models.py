"""Model manifests (ids, titles, families, sizes): pages and the API list models without torch.

The ids are the contract with workers/ml/backbones.py, which builds each one; a test checks that
both sides list the same ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from app.errors import Invalid

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONE_KINDS = ("embedding", "dense")


@dataclass(frozen=True)
class ModelSpec:
    id: str
    title: str
    family: str
    params_m: float
    default_image_size: int
    # A backbone's: image-level heads (a class or a value per image) on its "embedding"
    # features (the task registry test holds these lists equal to the workers' model ids).
    tasks: tuple[str, ...] = ("classification", "regression")
    description: str = ""
    pretrained_source: str = ""
    speed: str = "medium"
    tags: tuple[str, ...] = field(default_factory=tuple)
    # Methods that only work on pretrained features (feature-memory anomaly detectors): the
    # backbone id whose local weights they need; offered only where the workers found them.
    requires_pretrained: str = ""
    min_image_size: int = 16  # smaller inputs break the network (SSD's extra layers, ...)
    # Pretrained weights (app/catalog/weights.py looks for them): the published file names,
    # a Hugging Face repository whose cached snapshot counts too, and the catalog model whose
    # weights a detector falls back to (its backbone's ImageNet weights).
    weight_files: tuple[str, ...] = ()
    hf_repo: str = ""
    weights_fallback: str = ""
    # What the network was trained with and what its input must look like.
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    size_multiple: int = 1  # the input side is rounded up to a multiple (ViT patch, strides)
    frozen_by_default: bool = False  # train the head only unless the recipe says otherwise
    # Backbones only: the kinds of features it serves, which decide the heads built on it
    # (`backbones_with`): "embedding" (one vector per image: classification, regression,
    # hierarchical heads), "dense" (feature maps a decoder can use: DeepLabV3+),
    # "memory" (pretrained patch features a PaDiM/PatchCore memory is fitted on).
    feature_kinds: tuple[str, ...] = ()
    # The outputs a model gives beyond its task's own (dual-head: a segmentation map too).
    heads: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tasks"] = list(self.tasks)
        data["tags"] = list(self.tags)
        data["weight_files"] = list(self.weight_files)
        data["feature_kinds"] = list(self.feature_kinds)
        data["heads"] = list(self.heads) or list(self.tasks[:1])
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data


_MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    _MODELS[spec.id] = spec
    return spec


for _spec in (
    ModelSpec(
        "small_cnn",
        "Small CNN",
        "small_cnn",
        0.29,
        32,
        description="Four conv blocks; trains in seconds on a CPU. Good for small images.",
        speed="fast",
        feature_kinds=BACKBONE_KINDS,
    ),
    ModelSpec(
        "resnet18",
        "ResNet-18",
        "resnet",
        11.7,
        224,
        pretrained_source="torchvision",
        weight_files=("resnet18-f37072fd.pth",),
        feature_kinds=(*BACKBONE_KINDS, "memory"),
    ),
    ModelSpec(
        "resnet34",
        "ResNet-34",
        "resnet",
        21.8,
        224,
        pretrained_source="torchvision",
        weight_files=("resnet34-b627a593.pth",),
        feature_kinds=BACKBONE_KINDS,
    ),
    ModelSpec(
        "resnet50",
        "ResNet-50",
        "resnet",
        25.6,
        224,
        pretrained_source="torchvision",
        weight_files=("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"),
        speed="slow",
        feature_kinds=BACKBONE_KINDS,
    ),
    ModelSpec(
        "efficientnet_b0",
        "EfficientNet-B0",
        "efficientnet",
        5.3,
        224,
        pretrained_source="torchvision",
        weight_files=("efficientnet_b0_rwightman-7f5810bc.pth",),
        feature_kinds=BACKBONE_KINDS,
    ),
    ModelSpec(
        "efficientnet_b3",
        "EfficientNet-B3",
        "efficientnet",
        12.2,
        300,
        pretrained_source="torchvision",
        weight_files=("efficientnet_b3_rwightman-b3899882.pth",),
        speed="slow",
        feature_kinds=BACKBONE_KINDS,
    ),
    ModelSpec(
        "mobilenet_v3_small",
        "MobileNetV3-Small",
        "mobilenet",
        2.5,
        224,
        pretrained_source="torchvision",
        weight_files=("mobilenet_v3_small-047dcff4.pth",),
        speed="fast",
        feature_kinds=BACKBONE_KINDS,
    ),
    ModelSpec(
        "mobilenet_v3_large",
        "MobileNetV3-Large",
        "mobilenet",
        5.5,
        224,
        pretrained_source="torchvision",
        weight_files=("mobilenet_v3_large-8738ca79.pth", "mobilenet_v3_large-5c1a4163.pth"),
        feature_kinds=BACKBONE_KINDS,
    ),
    ModelSpec(
        "anomaly_unet",
        "Defect segmenter (self-supervised U-Net)",
        "anomaly",
        0.5,
        96,
        tasks=("anomaly",),
        description="Learns from random initialisation on a CPU: a small U-Net finds blobs of "
        "foreign texture pasted onto normal images (unsupervised), or real defects with BCE "
        "(supervised). Score: the map's peak.",
        speed="fast",
    ),
    ModelSpec(
        "conv_autoencoder",
        "Convolutional autoencoder (SSIM)",
        "anomaly",
        0.4,
        64,
        tasks=("anomaly",),
        description="Learns from random initialisation: reconstructs normal images through a "
        "bottleneck; the anomaly map is the SSIM and squared reconstruction error.",
        speed="fast",
    ),
):
    register_model(_spec)


for _spec in (
    ModelSpec(
        "unet_small",
        "U-Net (small)",
        "unet",
        0.49,
        96,
        tasks=("segmentation",),
        description="Four-level U-Net (16-32-64-128 channels): learns from random "
        "initialisation on a CPU in minutes.",
        speed="fast",
    ),
    ModelSpec(
        "fcn_resnet50",
        "FCN ResNet-50",
        "fcn",
        33.0,
        256,
        tasks=("segmentation",),
        pretrained_source="torchvision",
        weight_files=("fcn_resnet50_coco-1167a1af.pth",),
        weights_fallback="resnet50",
        speed="slow",
    ),
    ModelSpec(
        "deeplabv3_resnet50",
        "DeepLabV3 ResNet-50",
        "deeplabv3",
        39.6,
        256,
        tasks=("segmentation",),
        pretrained_source="torchvision",
        weight_files=("deeplabv3_resnet50_coco-cd0a2569.pth",),
        weights_fallback="resnet50",
        speed="slow",
    ),
    ModelSpec(
        "deeplabv3_mobilenet_v3_large",
        "DeepLabV3 MobileNetV3-Large",
        "deeplabv3",
        11.0,
        256,
        tasks=("segmentation",),
        pretrained_source="torchvision",
        weight_files=("deeplabv3_mobilenet_v3_large-fc3c493d.pth",),
        weights_fallback="mobilenet_v3_large",
    ),
    ModelSpec(
        "lraspp_mobilenet_v3_large",
        "LRASPP MobileNetV3-Large",
        "lraspp",
        3.2,
        256,
        tasks=("segmentation",),
        description="Lite R-ASPP: fast with pretrained weights; learns slowly from scratch.",
        pretrained_source="torchvision",
        weight_files=("lraspp_mobilenet_v3_large-d234d4ea.pth",),
        weights_fallback="mobilenet_v3_large",
        speed="fast",
    ),
    ModelSpec(
        "fcos_small",
        "FCOS (small CNN + FPN)",
        "fcos",
        1.2,
        96,
        tasks=("detection",),
        description="Anchor-free FCOS on a 5-stage CNN with an FPN (strides 8-32): learns "
        "from random initialisation on a CPU in minutes.",
        speed="fast",
        min_image_size=64,
    ),
    ModelSpec(
        "rotated_fcos_small",
        "Rotated FCOS (small CNN + FPN)",
        "rotated_fcos",
        1.1,
        96,
        tasks=("oriented_detection",),
        description="Anchor-free FCOS with an angle branch (KLD box loss, rotated NMS) on the "
        "detection task's 5-stage CNN + FPN: learns from random initialisation on a CPU.",
        speed="fast",
        min_image_size=64,
    ),
    ModelSpec(
        "rotated_fcos_resnet18",
        "Rotated FCOS ResNet-18 FPN",
        "rotated_fcos",
        11.9,
        256,
        tasks=("oriented_detection",),
        description="Rotated FCOS on a ResNet-18 with an FPN over strides 8-32; ImageNet "
        "weights for the backbone when present locally.",
        pretrained_source="torchvision",
        weights_fallback="resnet18",
        min_image_size=64,
    ),
    ModelSpec(
        "fasterrcnn_resnet50_fpn",
        "Faster R-CNN ResNet-50 FPN",
        "faster_rcnn",
        41.3,
        512,
        tasks=("detection",),
        pretrained_source="torchvision",
        weight_files=("fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",),
        weights_fallback="resnet50",
        speed="slow",
        min_image_size=128,
    ),
    ModelSpec(
        "fasterrcnn_mobilenet_v3_large_fpn",
        "Faster R-CNN MobileNetV3-Large FPN",
        "faster_rcnn",
        19.0,
        320,
        tasks=("detection",),
        pretrained_source="torchvision",
        weight_files=("fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",),
        weights_fallback="mobilenet_v3_large",
        min_image_size=128,
    ),
    ModelSpec(
        "fcos_resnet50_fpn",
        "FCOS ResNet-50 FPN",
        "fcos",
        32.1,
        512,
        tasks=("detection",),
        pretrained_source="torchvision",
        weight_files=("fcos_resnet50_fpn_coco-99b0c9b7.pth",),
        weights_fallback="resnet50",
        speed="slow",
        min_image_size=128,
    ),
    ModelSpec(
        "retinanet_resnet50_fpn",
        "RetinaNet ResNet-50 FPN",
        "retinanet",
        32.3,
        512,
        tasks=("detection",),
        pretrained_source="torchvision",
        weight_files=("retinanet_resnet50_fpn_coco-eeacb38b.pth",),
        weights_fallback="resnet50",
        speed="slow",
        min_image_size=128,
    ),
    ModelSpec(
        "ssd300_vgg16",
        "SSD300 VGG-16",
        "ssd",
        24.0,
        300,
        tasks=("detection",),
        pretrained_source="torchvision",
        weight_files=("ssd300_vgg16_coco-b556d3b4.pth",),
        min_image_size=300,
    ),
    ModelSpec(
        "ssdlite320_mobilenet_v3_large",
        "SSDlite320 MobileNetV3-Large",
        "ssd",
        2.2,
        320,
        tasks=("detection",),
        pretrained_source="torchvision",
        weight_files=("ssdlite320_mobilenet_v3_large_coco-a79551df.pth",),
        speed="fast",
        min_image_size=96,
    ),
    ModelSpec(
        "maskrcnn_small",
        "Mask R-CNN (small CNN + FPN)",
        "mask_rcnn",
        1.9,
        96,
        tasks=("instance_segmentation",),
        description="Mask R-CNN on detection's 5-stage CNN with an FPN (strides 8-32) and slim "
        "box and mask heads: learns from random initialisation on a CPU.",
        speed="fast",
        min_image_size=48,  # below, the stride-32 stage is 1x1 and batch norm fails on one image
    ),
    ModelSpec(
        "maskrcnn_resnet50_fpn",
        "Mask R-CNN ResNet-50 FPN",
        "mask_rcnn",
        44.4,
        512,
        tasks=("instance_segmentation",),
        description="torchvision's Mask R-CNN; about 3.5 s per step on 2 CPU cores: meant for "
        "a GPU or pretrained weights.",
        pretrained_source="torchvision",
        weight_files=("maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",),
        weights_fallback="resnet50",
        speed="slow",
        min_image_size=128,
    ),
):
    register_model(_spec)


def backbones_with(kind: str) -> list[ModelSpec]:
    """The backbones that serve a kind of features (`ModelSpec.feature_kinds`): what every
    task asks to know which heads it may put on which backbone."""
    return [m for m in _MODELS.values() if kind in m.feature_kinds]


def list_models(task: str | None = None) -> list[ModelSpec]:
    return [m for m in _MODELS.values() if task is None or task in m.tasks]


def get_model(model_id: str, task: str | None = None) -> ModelSpec:
    spec = _MODELS.get(model_id)
    if spec is None or (task is not None and task not in spec.tasks):
        valid = [m.id for m in list_models(task)]
        raise Invalid(
            f"model={model_id!r} is not in the catalog; use one of: {', '.join(valid)}.",
            code="unknown_model",
            details={"field": "model", "valid": valid},
        )
    return spec


# Models built on the backbones above (DINOv3, DeepLabV3+, the feature-memory anomaly methods).
import app.catalog.derived  # noqa: E402,F401
