"""Model manifests (ids, titles, families, sizes): pages and the API list models without torch.

The ids are the contract with workers/ml/backbones.py, which builds each one; a test checks that
both sides list the same ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from app.errors import Invalid


@dataclass(frozen=True)
class ModelSpec:
    id: str
    title: str
    family: str
    params_m: float
    default_image_size: int
    # Image-level heads (a class or a value per image) go on every backbone.
    tasks: tuple[str, ...] = ("classification", "regression")
    description: str = ""
    pretrained_source: str = ""
    speed: str = "medium"
    tags: tuple[str, ...] = field(default_factory=tuple)
    # Methods that only work on pretrained features (feature-memory anomaly detectors): the
    # backbone id whose local weights they need; offered only where the workers found them.
    requires_pretrained: str = ""
    min_image_size: int = 16  # smaller inputs break the network (SSD's extra layers, ...)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tasks"] = list(self.tasks)
        data["tags"] = list(self.tags)
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
    ),
    ModelSpec("resnet18", "ResNet-18", "resnet", 11.7, 224, pretrained_source="torchvision"),
    ModelSpec("resnet34", "ResNet-34", "resnet", 21.8, 224, pretrained_source="torchvision"),
    ModelSpec(
        "resnet50", "ResNet-50", "resnet", 25.6, 224, pretrained_source="torchvision", speed="slow"
    ),
    ModelSpec(
        "efficientnet_b0",
        "EfficientNet-B0",
        "efficientnet",
        5.3,
        224,
        pretrained_source="torchvision",
    ),
    ModelSpec(
        "efficientnet_b3",
        "EfficientNet-B3",
        "efficientnet",
        12.2,
        300,
        pretrained_source="torchvision",
        speed="slow",
    ),
    ModelSpec(
        "mobilenet_v3_small",
        "MobileNetV3-Small",
        "mobilenet",
        2.5,
        224,
        pretrained_source="torchvision",
        speed="fast",
    ),
    ModelSpec(
        "mobilenet_v3_large",
        "MobileNetV3-Large",
        "mobilenet",
        5.5,
        224,
        pretrained_source="torchvision",
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
    ModelSpec(
        "padim_resnet18",
        "PaDiM (ResNet-18 features)",
        "anomaly",
        11.7,
        128,
        tasks=("anomaly",),
        description="A Gaussian per feature-map position over pretrained ResNet-18 features of "
        "normal images; the map is the Mahalanobis distance. No gradient training.",
        pretrained_source="torchvision",
        requires_pretrained="resnet18",
    ),
    ModelSpec(
        "patchcore_resnet18",
        "PatchCore (ResNet-18 features)",
        "anomaly",
        11.7,
        128,
        tasks=("anomaly",),
        description="A memory bank of pretrained ResNet-18 patch features of normal images "
        "(coreset); the map is each patch's distance to its nearest normal patch.",
        pretrained_source="torchvision",
        requires_pretrained="resnet18",
    ),
):
    register_model(_spec)


for _spec in (
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
        "fasterrcnn_resnet50_fpn",
        "Faster R-CNN ResNet-50 FPN",
        "faster_rcnn",
        41.3,
        512,
        tasks=("detection",),
        pretrained_source="torchvision",
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
        speed="fast",
        min_image_size=96,
    ),
):
    register_model(_spec)


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
