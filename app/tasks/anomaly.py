"""Anomaly detection, the data half: normal versus anomalous images, optional defect masks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.tasks.registry import TaskSpec, register_task

if TYPE_CHECKING:
    from pathlib import Path

    from app.importers.base import Sample
    from app.tasks.mapping import ClassBook, Mapped, Warn


def map_sample(
    sample: Sample, w: int, h: int, book: ClassBook, source_root: Path, warn: Warn
) -> list[Mapped]:
    """Image labels (good / defect types) plus binary defect masks where the dataset has them."""
    from app.tasks import mapping as m

    out = m.image_labels(sample, book)
    for s in sample.annotations:
        if s.kind == "mask_file":
            mask = m.read_mask(source_root, s.geometry, w, h, book, warn, binary=True)
            if mask is not None:
                out.append(m.Mapped("mask", "anomalous", {}, {}, mask))
    return out


register_task(
    TaskSpec(
        key="anomaly",
        title="Anomaly detection",
        description="Normal versus anomalous images, optionally with defect masks.",
        annotation_kinds=("label", "mask"),
        badge_color="#dc2626",
        order=50,
        primary_metric="val/auroc",
        map_sample=map_sample,
    )
)
