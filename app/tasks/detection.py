"""Object detection, the data half: axis-aligned boxes with a class each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, StrictBool

from app.tasks.hyperparams import Augmentations, TrainConfig, task_field
from app.tasks.registry import MetricSpec, TaskSpec, register_task

if TYPE_CHECKING:
    from pathlib import Path

    from app.importers.base import Sample
    from app.tasks.mapping import ClassBook, Mapped, Warn


class DetectionAugment(Augmentations):
    """Geometric augmentations move, clip or drop the boxes with the image (tv_tensors)."""

    hflip: StrictBool = Field(True, description="Random horizontal flip (boxes mirrored).")
    rotation: float = Field(
        0.0, ge=0, le=30, description="Random rotation, ± degrees (0-30; boxes grow to fit)."
    )
    color_jitter: float = Field(
        0.2, ge=0, le=1, description="Brightness/contrast/saturation jitter strength (0-1)."
    )
    random_resized_crop: StrictBool = Field(
        False,
        description="Random crop of 60-100% of the image, resized back (boxes clipped, "
        "objects mostly outside dropped).",
    )
    scale_jitter: float = Field(
        0.25,
        ge=0,
        le=0.75,
        description="Random zoom out/in by up to this share (0-0.75): objects at other sizes.",
    )


class DetectionConfig(TrainConfig):
    augment: DetectionAugment = Field(default_factory=DetectionAugment)
    score_threshold: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Score at which a detection counts as predicted (TP/FP/FN per image, "
        "prediction default). mAP uses every detection.",
        **task_field(),
    )
    nms_iou: float = Field(
        0.5,
        gt=0,
        le=1,
        description="IoU above which NMS drops the weaker box (0-1).",
        **task_field(label="NMS IoU"),
    )
    max_detections: int = Field(
        100, ge=1, le=1000, description="Detections kept per image (1-1000).", **task_field()
    )


def map_sample(
    sample: Sample, w: int, h: int, book: ClassBook, source_root: Path, warn: Warn
) -> list[Mapped]:
    """Boxes as given; a polygon or RLE object without its own box becomes its extent."""
    from app.tasks import mapping as m

    out: list[m.Mapped] = []
    for s in sample.annotations:
        if s.kind in {"label", "value", "mask_file"} or not s.label:
            continue
        if s.kind != "bbox" and s.group is not None:
            continue  # the object's own bbox is in the sample too
        box = m.shape_box(s, m.scale(sample, s, w, h), w, h, warn)
        if box is not None:
            book.add(s.label)
            out.append(m.Mapped("bbox", s.label, box, dict(s.attributes)))
    return out


METRICS = (
    MetricSpec("map", "mAP@[.5:.95]", percent=True),
    MetricSpec("map50", "mAP@.5", percent=True),
    MetricSpec("map75", "mAP@.75", percent=True),
    MetricSpec("map_small", "mAP small", percent=True),
    MetricSpec("map_medium", "mAP medium", percent=True),
    MetricSpec("map_large", "mAP large", percent=True),
    MetricSpec("mar100", "mAR@100", percent=True),
    MetricSpec("precision", "Precision at the score threshold", percent=True),
    MetricSpec("recall", "Recall at the score threshold", percent=True),
    MetricSpec("f1", "F1 at the score threshold", percent=True),
)

register_task(
    TaskSpec(
        key="detection",
        title="Object detection",
        description="Axis-aligned boxes with a class each.",
        annotation_kinds=("bbox",),
        badge_color="#ea580c",
        order=20,
        features=frozenset(
            {"projects", "import", "splits", "train", "evaluate", "export", "predict"}
        ),
        default_model="fcos_small",
        primary_metric="val/map50",
        curve_metrics=("val/map50", "val/map"),
        metrics=METRICS,
        summary_metric="map50",
        config_model=DetectionConfig,
        # From scratch on a CPU, a detector needs many more steps than a classifier: 50
        # epochs at batch 16 is ~750 steps on 240 images (NOTES.md: FCOS-small reaches
        # mAP50 0.8 within ~700 steps at 96 px); AdamW at 2e-3 with a 2-epoch warm-up.
        config_defaults={
            "epochs": 50,
            "batch_size": 16,
            "lr": 2e-3,
            "warmup_epochs": 2.0,
            "weight_decay": 1e-4,
        },
        result_filters=("outcome", "cell", "class", "has_fp", "has_fn"),
        map_sample=map_sample,
        parity_note=(
            "boxes scoring at least the score threshold are matched between the checkpoint "
            "and the file (IoU ≥ 0.5, same class): fp32 needs ≥ 99 % matched, box corners "
            "within 0.5 px, scores within 1e-3 and mAP50 within 0.01; INT8 needs ≥ 80 % "
            "matched and an mAP50 drop ≤ 0.03."
        ),
    )
)
