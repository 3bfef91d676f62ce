"""Oriented object detection, the data half: rotated boxes with a class each."""

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
    """4-point boxes become (cx, cy, w, h, angle); axis-aligned boxes and polygons get angle 0."""
    from app.tasks import mapping as m

    out: list[m.Mapped] = []
    for s in sample.annotations:
        if s.kind in {"label", "value", "mask_file"} or not s.label:
            continue
        g = m.scale(sample, s, w, h)
        if s.kind == "quad":
            obb = m.quad_to_obb(m.clip_points(g["points"], w, h, warn))
        elif s.kind in {"bbox", "polygon"}:
            box = m.shape_box(s, g, w, h, warn)
            obb = None if box is None else m.box_to_obb(box)
        else:
            continue
        if obb is None:
            warn("oriented box outside the image or degenerate; skipped")
            continue
        book.add(s.label)
        out.append(m.Mapped("obb", s.label, obb, dict(s.attributes)))
    return out


register_task(
    TaskSpec(
        key="oriented_detection",
        title="Oriented object detection",
        description="Rotated boxes with a class each (aerial and document imagery).",
        annotation_kinds=("obb",),
        badge_color="#ca8a04",
        order=70,
        primary_metric="val/map50",
        map_sample=map_sample,
    )
)
