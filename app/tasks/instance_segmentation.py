"""Instance segmentation, the data half: a mask (polygon or RLE) and a class for every object."""

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
    """Polygons and RLE masks as instances; a box only for objects that have no other shape."""
    from app.tasks import mapping as m

    grouped = m.grouped_ids(sample)
    out: list[m.Mapped] = []
    for s in sample.annotations:
        if s.kind in {"label", "value", "mask_file"} or not s.label:
            continue
        g = m.scale(sample, s, w, h)
        attrs = dict(s.attributes)
        if s.kind == "bbox":
            if s.group in grouped:
                continue
            box = m.clip_box(g, w, h, warn)
            if box is not None:
                book.add(s.label)
                out.append(m.Mapped("bbox", s.label, box, attrs))
        elif s.kind in {"polygon", "quad"}:
            rings = [m.clip_points(r, w, h, warn) for r in m.rings_of(g)]
            geometry = {"points": rings[0]} if len(rings) == 1 else {"rings": rings}
            book.add(s.label)
            out.append(m.Mapped("polygon", s.label, geometry, attrs))
        elif s.kind == "rle":
            region = m.rle_mask(g)
            if region.shape != (h, w):
                warn("RLE size differs from the image; skipped")
                continue
            book.add(s.label)
            out.append(m.Mapped("mask", s.label, {}, attrs, region))
    return out


register_task(
    TaskSpec(
        key="instance_segmentation",
        title="Instance segmentation",
        description="A mask and a class for every object.",
        annotation_kinds=("polygon", "mask", "bbox"),
        badge_color="#0d9488",
        order=40,
        primary_metric="val/map_mask",
        map_sample=map_sample,
    )
)
