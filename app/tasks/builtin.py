"""The seven built-in task types (STYLE.md's task keys)."""

from app.tasks.registry import TaskSpec, register_task

register_task(
    TaskSpec(
        key="classification",
        title="Classification",
        description="One or more class labels per image (multi-class, multi-label, hierarchical).",
        annotation_kinds=("label",),
        primary_metric="val/acc",
        badge_color="#2563eb",
    )
)
register_task(
    TaskSpec(
        key="detection",
        title="Object detection",
        description="Axis-aligned boxes with a class each.",
        annotation_kinds=("bbox",),
        primary_metric="val/map50",
        badge_color="#ea580c",
    )
)
register_task(
    TaskSpec(
        key="segmentation",
        title="Semantic segmentation",
        description="A class for every pixel.",
        annotation_kinds=("mask", "polygon"),
        primary_metric="val/miou",
        badge_color="#16a34a",
    )
)
register_task(
    TaskSpec(
        key="instance_segmentation",
        title="Instance segmentation",
        description="A mask and a class for every object.",
        annotation_kinds=("polygon", "mask", "bbox"),
        primary_metric="val/map_mask",
        badge_color="#0d9488",
    )
)
register_task(
    TaskSpec(
        key="anomaly",
        title="Anomaly detection",
        description="Normal versus anomalous images, optionally with defect masks.",
        annotation_kinds=("label", "mask"),
        primary_metric="val/auroc",
        badge_color="#dc2626",
    )
)
register_task(
    TaskSpec(
        key="regression",
        title="Regression",
        description="One or more numeric targets per image.",
        annotation_kinds=("value",),
        primary_metric="val/mae",
        metric_mode="min",
        badge_color="#7c3aed",
    )
)
register_task(
    TaskSpec(
        key="oriented_detection",
        title="Oriented object detection",
        description="Rotated boxes with a class each (aerial and document imagery).",
        annotation_kinds=("obb",),
        primary_metric="val/map50",
        badge_color="#ca8a04",
    )
)
