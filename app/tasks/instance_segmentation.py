"""Instance segmentation, the data half: a mask (polygon or RLE) and a class for every object."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, StrictBool

from app.tasks.detection import DetectionAugment, DetectionConfig
from app.tasks.registry import MetricSpec, TaskSpec, register_task

if TYPE_CHECKING:
    from pathlib import Path

    from app.importers.base import Sample
    from app.tasks.mapping import ClassBook, Mapped, Warn


class InstanceAugment(DetectionAugment):
    """Detection's augmentations; geometric ones move each instance's mask and box with the
    image (tv_tensors.Mask + BoundingBoxes)."""

    hflip: StrictBool = Field(True, description="Random horizontal flip (masks mirrored).")
    rotation: float = Field(
        0.0,
        ge=0,
        le=30,
        description="Random rotation, ± degrees (0-30; masks rotate, boxes refit).",
    )


class InstanceConfig(DetectionConfig):
    augment: InstanceAugment = Field(default_factory=InstanceAugment)


def usable_rings(rings: list[list[list[float]]], warn: Warn) -> list[list[list[float]]]:
    """The rings a mask can be drawn from. Fewer than 3 points: dropped. An outline that
    crosses itself is most often a slip of the annotator's pen (real VOC/LabelMe polygons
    have them): repaired when one part holds nearly all of the repaired area, dropped when
    it splits into comparable parts (a bow-tie, whose intended fill would be a guess).
    Each case is warned about in the import report."""
    from shapely.geometry import Polygon

    kept = []
    for ring in rings:
        if len(ring) < 3:
            warn("polygon with fewer than 3 points; dropped")
            continue
        shape = Polygon(ring)
        if not shape.exterior.is_simple:
            repaired = repaired_outline(shape)
            if repaired is None:
                warn("self-intersecting polygon; dropped")
            else:
                warn("self-intersecting polygon; repaired (the crossing's sliver removed)")
                kept.append(repaired)
        elif shape.area <= 0 or not shape.is_valid:
            warn("polygon with no area; dropped")
        else:
            kept.append(ring)
    return kept


MAIN_PART_SHARE = 0.9  # a repaired outline's largest part must hold this much of its area


def repaired_outline(shape: Any) -> list[list[float]] | None:
    """The exterior of a self-crossing outline's main part, or None when it has none."""
    from shapely.validation import make_valid

    fixed = make_valid(shape)
    parts = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type == "Polygon"]
    total = sum(g.area for g in parts)
    if total <= 0:
        return None
    main = max(parts, key=lambda g: g.area)
    if main.area < MAIN_PART_SHARE * total:
        return None
    return [[float(x), float(y)] for x, y in list(main.exterior.coords)[:-1]]


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
            rings = usable_rings([m.clip_points(r, w, h, warn) for r in m.rings_of(g)], warn)
            if not rings:
                continue
            geometry = {"points": rings[0]} if len(rings) == 1 else {"rings": rings}
            book.add(s.label)
            out.append(m.Mapped("polygon", s.label, geometry, attrs))
        elif s.kind == "rle":
            try:
                region = m.rle_mask(g)
            except (ValueError, TypeError, KeyError) as exc:
                warn(f"bad RLE ({exc}); skipped")
                continue
            if region.shape != (h, w):
                warn("RLE size differs from the image; skipped")
                continue
            book.add(s.label)
            out.append(m.Mapped("mask", s.label, {}, attrs, region))
    return out


METRICS = (
    MetricSpec("map_mask", "Mask mAP@[.5:.95]", percent=True),
    MetricSpec("map50_mask", "Mask mAP@.5", percent=True),
    MetricSpec("map75_mask", "Mask mAP@.75", percent=True),
    MetricSpec("map_box", "Box mAP@[.5:.95]", percent=True),
    MetricSpec("map50_box", "Box mAP@.5", percent=True),
    MetricSpec("mar100_mask", "Mask mAR@100", percent=True),
    MetricSpec("precision", "Precision at the score threshold", percent=True),
    MetricSpec("recall", "Recall at the score threshold", percent=True),
    MetricSpec("f1", "F1 at the score threshold", percent=True),
)

register_task(
    TaskSpec(
        key="instance_segmentation",
        title="Instance segmentation",
        description="A mask and a class for every object.",
        annotation_kinds=("polygon", "mask", "bbox"),
        badge_color="#0d9488",
        order=40,
        features=frozenset(
            {"projects", "import", "splits", "train", "evaluate", "export", "predict"}
        ),
        default_model="maskrcnn_small",
        primary_metric="val/map_mask",
        curve_metrics=("val/map50_mask", "val/map_mask", "val/map50_box"),
        metrics=METRICS,
        summary_metric="map50_mask",
        config_model=InstanceConfig,
        # From scratch on a CPU, like detection: many steps at a small size. On the published
        # generator 16 epochs (480 steps) reached test mask mAP50 0.92 at ~1 CPU-second a
        # step (benchmarks/README.md); 20 epochs leave a margin within 15 minutes on 2 cores.
        config_defaults={
            "image_size": 96,
            "epochs": 20,
            "batch_size": 8,
            "lr": 2e-3,
            "warmup_epochs": 2.0,
            "weight_decay": 1e-4,
        },
        result_filters=("outcome", "cell", "class", "has_fp", "has_fn"),
        map_sample=map_sample,
        parity_note=(
            "instances scoring at least the score threshold are matched between the checkpoint "
            "and the file (mask IoU ≥ 0.5, same class): fp32 needs ≥ 99 % matched, a mean mask "
            "IoU on matches ≥ 0.99, scores within 1e-3 and mask mAP50 within 0.01; INT8 needs "
            "≥ 80 % matched and a mask mAP50 drop ≤ 0.03."
        ),
    )
)
