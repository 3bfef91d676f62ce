"""Semantic segmentation, the data half: a class for every pixel (index masks, 255 = ignore).

Background is an explicit class: a new project gets `background` at index 0 (a dataset's own
map may name it), and every metric is reported with and without it, so the user sees which.
A `hierarchy` block (app/tasks/hierarchy.py, shared with classification) makes the model
hierarchical: per-pixel heads per level (workers/ml/tasks/segmentation/hierarchy.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, StrictBool, model_validator

from app.tasks.hierarchy import HierarchyConfig, bind_taxonomy
from app.tasks.hyperparams import Augmentations, TrainConfig, task_field
from app.tasks.registry import MetricSpec, TaskSpec, register_task

if TYPE_CHECKING:
    from pathlib import Path

    from app.importers.base import Sample
    from app.tasks.mapping import ClassBook, Mapped, Warn


class SegmentationAugment(Augmentations):
    """Geometric augmentations move the mask with the image (tv_tensors.Mask, nearest
    interpolation); pixels a rotation or zoom-out brings in are ignore (255) in the mask."""

    hflip: StrictBool = Field(True, description="Random horizontal flip (mask mirrored).")
    rotation: float = Field(
        0.0, ge=0, le=180, description="Random rotation, ± degrees (0-180; corners → ignore)."
    )
    color_jitter: float = Field(
        0.2, ge=0, le=1, description="Brightness/contrast/saturation jitter strength (0-1)."
    )
    random_resized_crop: StrictBool = Field(
        True,
        description="Random crop of 50-100% of the image, resized back (objects at other "
        "scales and positions).",
    )


class SegmentationConfig(TrainConfig):
    augment: SegmentationAugment = Field(default_factory=SegmentationAugment)
    dice_weight: float = Field(
        0.5,
        ge=0,
        le=10,
        description="Weight of the Dice loss added to cross-entropy (0 = cross-entropy only).",
        **task_field(label="Dice weight"),
    )
    class_weights: Literal["none", "inverse_frequency", "sqrt_inverse_frequency"] = Field(
        "none",
        description="Cross-entropy class weights from the training masks' pixel counts "
        "(rare classes count more); none = plain cross-entropy.",
        **task_field(
            titles={
                "none": "None",
                "inverse_frequency": "Inverse frequency",
                "sqrt_inverse_frequency": "Square root of inverse frequency",
            }
        ),
    )
    decoder_channels: int | None = Field(
        None,
        ge=4,
        le=1024,
        description="Decoder width (ASPP / head channels; U-Net base width); empty = the "
        "model's default (DeepLab 256, FCN 512, LRASPP 128, U-Net 16).",
        **task_field(label="Decoder width"),
    )

    hierarchy: HierarchyConfig | None = Field(
        None,
        description="Hierarchical per-pixel model (JSON): heads per level on the decoder, e.g. "
        '{"levels": ["coarse", "fine"], "curriculum": [{"level": "coarse", "epochs": 3, "lr": '
        '0.003}, {"level": "fine", "epochs": 7, "lr": 0.003}], "gated_inference": true} '
        "(docs/hierarchy.md); empty = flat.",
        **task_field(label="Hierarchy"),
    )

    @model_validator(mode="after")
    def _hierarchy_parts(self) -> SegmentationConfig:
        """The classification-only parts of a hierarchy are refused by name, and a curriculum
        sets the epochs (as for classification)."""
        if self.hierarchy is None:
            return self
        unsupported = [
            name
            for name, on in (
                ("adapters", self.hierarchy.adapters is not None),
                ("distill", self.hierarchy.distill is not None),
                ("freeze_early_layers", self.hierarchy.freeze_early_layers > 0),
            )
            if on
        ]
        if unsupported:
            raise ValueError(
                f"hierarchical segmentation does not support {', '.join(unsupported)} (they are "
                "classification's optional parts); leave them out"
            )
        if self.hierarchy.curriculum:
            self.epochs = sum(stage.epochs for stage in self.hierarchy.curriculum)
        return self


def bind_hierarchy(config: dict[str, Any], parents: dict[str, str | None]) -> dict[str, Any]:
    """Classification's taxonomy binding, with the background class needing no parent: without
    one it is the group "background" at every level (the POC plan's "clean" pixels)."""
    return bind_taxonomy(config, parents, frozenset(IMPLICIT_CLASSES))


IMPLICIT_CLASSES = ("background",)


def map_sample(
    sample: Sample, w: int, h: int, book: ClassBook, source_root: Path, warn: Warn
) -> list[Mapped]:
    """One index mask per image: a mask file as given, or polygons and RLE painted in order.

    A mask where every pixel is ignore (255) teaches nothing: the image is kept without a mask
    and the import report says so."""
    import numpy as np

    from app.tasks import mapping as m

    canvas = np.zeros((h, w), dtype=np.uint8)
    painted = False
    for s in sample.annotations:
        g = m.scale(sample, s, w, h)
        if s.kind == "mask_file":
            mask = m.read_mask(source_root, g, w, h, book, warn, binary=False)
            if mask is not None:
                canvas, painted = mask, True
        elif s.kind in {"polygon", "quad", "rle"} and s.label:
            try:
                region = m.rle_mask(g) if s.kind == "rle" else m.polygon_mask(m.rings_of(g), w, h)
            except (ValueError, TypeError, KeyError) as exc:
                warn(f"bad {s.kind} ({exc}); skipped")
                continue
            if region.shape != canvas.shape:
                warn(f"{s.kind} size {region.shape} differs from the image; skipped")
                continue
            canvas[region > 0] = book.add(s.label)
            painted = True
    if painted and bool((canvas == m.IGNORE).all()):
        warn("every mask pixel is ignore (255): the image is kept without a mask, training nothing")
        return []
    return [m.Mapped("mask", None, {}, {}, canvas)] if painted else []


METRICS = (
    MetricSpec("miou", "mIoU, dataset-level (with background)", percent=True),
    MetricSpec("miou_no_bg", "mIoU, dataset-level (without background)", percent=True),
    MetricSpec("pixel_accuracy", "Pixel accuracy (with background)", percent=True),
    MetricSpec("pixel_accuracy_no_bg", "Pixel accuracy (without background)", percent=True),
    MetricSpec("dice", "Mean Dice (with background)", percent=True),
    MetricSpec("dice_no_bg", "Mean Dice (without background)", percent=True),
    MetricSpec("image_miou", "Per-image mIoU, averaged over images", percent=True),
    # Hierarchical models (docs/hierarchy.md); absent keys are not shown.
    MetricSpec("fine/miou", "Fine mIoU", percent=True),
    MetricSpec("coarse/miou", "Coarse mIoU (coarse head)", percent=True),
    MetricSpec("coarse/implied_miou", "Coarse mIoU (implied by fine)", percent=True),
    MetricSpec("binary/miou", "Binary mIoU (binary head)", percent=True),
    MetricSpec("binary/implied_miou", "Binary mIoU (implied by fine)", percent=True),
    MetricSpec("violations", "Hierarchy violations (pixels, fine outside coarse)", mode="min"),
    MetricSpec("loss", "Loss (cross-entropy per pixel)", mode="min"),
)

register_task(
    TaskSpec(
        key="segmentation",
        title="Semantic segmentation",
        description="A class for every pixel.",
        annotation_kinds=("mask", "polygon"),
        badge_color="#16a34a",
        order=30,
        features=frozenset(
            {"projects", "import", "splits", "train", "evaluate", "export", "predict"}
        ),
        default_model="unet_small",
        primary_metric="val/miou",
        curve_metrics=(
            "val/miou",
            "val/miou_no_bg",
            "val/pixel_accuracy",
            "val/coarse_miou",
            "val/binary_miou",
        ),
        metrics=METRICS,
        summary_metric="miou",
        config_model=SegmentationConfig,
        config_defaults={"epochs": 20, "batch_size": 16, "lr": 3e-3, "warmup_epochs": 1.0},
        result_filters=("cell", "class"),
        result_sorts=(
            ("-confidence", "lowest image mIoU first"),
            ("confidence", "highest image mIoU first"),
            ("error", "most misclassified pixels"),
            ("loss", "highest loss"),
            ("cell", "largest share of the chosen confusion"),
            ("image", "image id"),
        ),
        result_titles={"score": "Image mIoU", "error": "Misclassified pixels"},
        detail_overlay=False,
        parity_note="fp32 formats need max |Δ logit| ≤ 1e-4 and argmax agreement ≥ 99.9 % of "
        "pixels; INT8 needs ≥ 98 % pixel agreement and an mIoU drop ≤ 0.02.",
        tta_options=(
            ("hflip", "horizontal flip"),
            ("multiscale", "multi-scale (0.75x, 1x, 1.25x)"),
        ),
        map_sample=map_sample,
        bind_classes=bind_hierarchy,
        implicit_classes=IMPLICIT_CLASSES,
    )
)
