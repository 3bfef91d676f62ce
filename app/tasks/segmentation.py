"""Semantic segmentation, the data half: a class for every pixel (index masks, 255 = ignore)."""

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
    """One index mask per image: a mask file as given, or polygons and RLE painted in order."""
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
    return [m.Mapped("mask", None, {}, {}, canvas)] if painted else []


register_task(
    TaskSpec(
        key="segmentation",
        title="Semantic segmentation",
        description="A class for every pixel.",
        annotation_kinds=("mask", "polygon"),
        badge_color="#16a34a",
        order=30,
        primary_metric="val/miou",
        map_sample=map_sample,
        implicit_classes=("background",),
    )
)
