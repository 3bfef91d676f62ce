"""The DINOv3 backbones, and the models built on declared backbone features: DeepLabV3+ on every
backbone with dense features, PaDiM and PatchCore on every backbone with memory features.

Registered when app/catalog/models.py is imported (its last line), so every reader of the
catalog sees them.
"""

from __future__ import annotations

from typing import Any

from app.catalog.models import BACKBONE_KINDS, ModelSpec, backbones_with, register_model

# DINOv3 (Meta, through transformers): self-supervised backbones whose frozen features are
# strong enough for a linear head, hence head-only training by default. The weights are the
# Hugging Face checkpoints (gated: the licence is accepted on huggingface.co once).
_DINOV3 = (
    # id, title, params (M), Hugging Face repository, size multiple (ViT patch / ConvNeXt stride)
    ("dinov3_vit_small", "DINOv3 ViT-S/16", 21.6, "facebook/dinov3-vits16-pretrain-lvd1689m", 16),
    ("dinov3_vit_base", "DINOv3 ViT-B/16", 85.7, "facebook/dinov3-vitb16-pretrain-lvd1689m", 16),
    ("dinov3_vit_large", "DINOv3 ViT-L/16", 303.1, "facebook/dinov3-vitl16-pretrain-lvd1689m", 16),
    ("dinov3_convnext_small", "DINOv3 ConvNeXt-S", 49.5,
     "facebook/dinov3-convnext-small-pretrain-lvd1689m", 32),
    ("dinov3_convnext_base", "DINOv3 ConvNeXt-B", 87.6,
     "facebook/dinov3-convnext-base-pretrain-lvd1689m", 32),
    ("dinov3_convnext_large", "DINOv3 ConvNeXt-L", 196.2,
     "facebook/dinov3-convnext-large-pretrain-lvd1689m", 32),
)  # fmt: skip
for _id, _title, _params, _repo, _multiple in _DINOV3:
    register_model(
        ModelSpec(
            _id,
            _title,
            "dinov3_vit" if "_vit_" in _id else "dinov3_convnext",
            _params,
            224,
            # The ids are detectors too (a feature pyramid, FPN and FCOS heads on the backbone).
            tasks=("classification", "regression", "detection"),
            description="DINOv3 self-supervised backbone (LVD-1689M); head-only training by "
            "default, the last blocks can be unfrozen. Detection: a feature pyramid, FPN and "
            f"FCOS heads on it. Input sides are multiples of {_multiple} px.",
            # (segmentation, anomaly and dual-head classification offer it as
            # deeplabv3plus_/padim_/patchcore_/dualhead_<id>)
            pretrained_source="huggingface",
            speed="slow" if _params > 60 else "medium",
            min_image_size=_multiple * 2,
            weight_files=(f"{_repo.split('/')[1]}.safetensors",),
            hf_repo=_repo,
            size_multiple=_multiple,
            frozen_by_default=True,
            feature_kinds=(*BACKBONE_KINDS, "memory"),
        )
    )


def _on_backbone(backbone: ModelSpec, **fields: Any) -> ModelSpec:
    """A model built on a backbone inherits what its input must look like and its weights."""
    return ModelSpec(
        mean=backbone.mean,
        std=backbone.std,
        size_multiple=backbone.size_multiple,
        frozen_by_default=backbone.frozen_by_default,
        min_image_size=max(backbone.min_image_size, fields.pop("min_image_size", 16)),
        pretrained_source=backbone.pretrained_source and "backbone",
        weights_fallback=backbone.id if backbone.pretrained_source else "",
        speed=backbone.speed,
        **fields,
    )


# DeepLabV3+ (written in workers/ml/tasks/segmentation/models.py) on every backbone with
# dense features: ASPP 6/12/18 plus a low-level skip decoder, ~3-13 M parameters on top
# (a DINOv3 ViT's single 1/16 map first goes through a simple ViTDet-style pyramid).
_PLUS_PARAMS = {
    "small_cnn": 2.9,
    "resnet18": 16.6,
    "resnet34": 26.7,
    "resnet50": 40.4,
    "efficientnet_b0": 15.1,
    "efficientnet_b3": 23.7,
    "mobilenet_v3_small": 6.8,
    "mobilenet_v3_large": 11.7,
}
for _backbone in backbones_with("dense"):
    register_model(
        _on_backbone(
            _backbone,
            id=f"deeplabv3plus_{_backbone.id}",
            title=f"DeepLabV3+ {_backbone.title}",
            family="deeplabv3plus",
            params_m=_PLUS_PARAMS.get(_backbone.id, _backbone.params_m),
            default_image_size=128 if _backbone.id == "small_cnn" else 256,
            tasks=("segmentation",),
            description="ASPP (rates 6/12/18) and a stride-4 skip decoder on this backbone.",
        )
    )

# Dual-head (workers/ml/tasks/classification/dual_head/): the same DeepLabV3+ decoder and a
# classification head on one backbone, for classification images that also carry masks; on
# every backbone with dense features, as DeepLabV3+ (a ViT's 1/16 map through the pyramid).
for _backbone in backbones_with("dense"):
    register_model(
        _on_backbone(
            _backbone,
            id=f"dualhead_{_backbone.id}",
            title=f"Dual-head {_backbone.title} (class + masks)",
            family="dualhead",
            params_m=_PLUS_PARAMS.get(_backbone.id, _backbone.params_m),
            default_image_size=128 if _backbone.id == "small_cnn" else 224,
            tasks=("classification",),
            description="Classification head and a DeepLabV3+ segmentation decoder on this "
            "backbone, trained in phases A/B/C on images with masks; the segmentation gate "
            "rejects out-of-domain images before classifying.",
            heads=("classification", "segmentation"),
        )
    )

# Mask R-CNN on DINOv3 (workers/ml/tasks/instance_segmentation/models.py): detection's DINOv3
# pyramid and FPN (strides 8-32) under the small model's slim box and mask heads.
_DINOV3_SPECS = [m for m in backbones_with("dense") if m.id in {d[0] for d in _DINOV3}]
for _backbone in _DINOV3_SPECS:
    register_model(
        _on_backbone(
            _backbone,
            id=f"maskrcnn_{_backbone.id}",
            title=f"Mask R-CNN ({_backbone.title})",
            family="mask_rcnn",
            params_m=round(_backbone.params_m + 1.5, 1),
            default_image_size=224,
            tasks=("instance_segmentation",),
            description=f"{_backbone.title} features through a feature pyramid and FPN into "
            "slim Mask R-CNN box and mask heads; the backbone is frozen by default.",
        )
    )

# PaDiM and PatchCore fit a memory of pretrained features of normal images (no gradient
# training): offered only where the workers found the backbone's weights.
_MEMORY = {
    "padim": ("PaDiM", "A Gaussian per feature-map position over pretrained {title} features "
              "of normal images; the map is the Mahalanobis distance. No gradient training."),
    "patchcore": ("PatchCore", "A memory bank of pretrained {title} patch features of normal "
                  "images (coreset); the map is each patch's distance to its nearest normal "
                  "patch."),
}  # fmt: skip
for _method, (_name, _text) in _MEMORY.items():
    for _backbone in backbones_with("memory"):
        register_model(
            _on_backbone(
                _backbone,
                id=f"{_method}_{_backbone.id}",
                title=f"{_name} ({_backbone.title} features)",
                family="anomaly",
                params_m=_backbone.params_m,
                # ResNet-18's layer 1 at 128 px is a 32x32 grid; a ViT's 1/16 grid wants 224.
                default_image_size=128 if _backbone.id == "resnet18" else 224,
                tasks=("anomaly",),
                description=_text.format(title=_backbone.title),
                requires_pretrained=_backbone.id,
            )
        )
