"""Numeric targets of a dataset (`value` annotations: {"values": [...], "names": [...]}), as
the dataset page shows them: names, each image's values, a histogram per target, and the
range filter of the image list.

The range filter reads the value out of the annotation's JSON in SQL (SQLite json_extract,
PostgreSQL ->>), on the project's value annotations only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import Session, col, select

from app.errors import Invalid
from app.models import Annotation
from app.models.browse import TargetHistogram

VALUE = "value"
HISTOGRAM_BINS = 12


def names_of(geometry: Mapping[str, Any]) -> list[str]:
    """A value annotation's target names (`target`, `target_2`... for rows without names)."""
    values = geometry.get("values") or []
    names = [str(n) for n in geometry.get("names") or []]
    if len(names) != len(values):
        names = ["target" if i == 0 else f"target_{i + 1}" for i in range(len(values))]
    return names


def target_names(session: Session, project_id: int) -> list[str]:
    """The project's target names, from its first value annotation ([] without any)."""
    first = session.exec(
        select(Annotation.geometry)
        .where(col(Annotation.project_id) == project_id, col(Annotation.kind) == VALUE)
        .order_by(col(Annotation.id))
        .limit(1)
    ).first()
    return names_of(first or {})


def image_values(session: Session, image_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """{image id: {target name: value}} for these images (a page of the grid)."""
    found: dict[int, dict[str, float]] = {}
    if not image_ids:
        return found
    for image_id, geometry in session.exec(
        select(Annotation.image_id, Annotation.geometry).where(
            col(Annotation.image_id).in_(list(image_ids)), col(Annotation.kind) == VALUE
        )
    ).all():
        values = (geometry or {}).get("values") or []
        found.setdefault(image_id, {}).update(
            {n: v for n, v in zip(names_of(geometry or {}), values, strict=True)}
        )
    return found


def histograms(session: Session, project_id: int) -> list[TargetHistogram]:
    """Per target: count, min, max, mean, std and a histogram of its values."""
    rows = session.exec(
        select(Annotation.geometry).where(
            col(Annotation.project_id) == project_id, col(Annotation.kind) == VALUE
        )
    ).all()
    columns: dict[str, list[float]] = {}
    order: list[str] = []
    for geometry in rows:
        for name, value in zip(
            names_of(geometry or {}), (geometry or {}).get("values") or [], strict=True
        ):
            if isinstance(value, int | float) and math.isfinite(value):
                if name not in columns:
                    columns[name] = []
                    order.append(name)
                columns[name].append(float(value))
    out = []
    for name in order:
        values = columns[name]
        low, high = min(values), max(values)
        width = (high - low) / HISTOGRAM_BINS or 1.0
        counts = [0] * HISTOGRAM_BINS
        for value in values:
            counts[min(HISTOGRAM_BINS - 1, int((value - low) / width))] += 1
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        out.append(
            TargetHistogram(
                name=name,
                count=len(values),
                min=low,
                max=high,
                mean=mean,
                std=std,
                edges=[low + k * width for k in range(HISTOGRAM_BINS + 1)],
                counts=counts,
            )
        )
    return out


def range_filter(
    session: Session,
    project_id: int,
    target: str | None,
    low: float | None,
    high: float | None,
) -> Any:
    """The ids of images whose target lies in [low, high] (either bound may be open), as a
    subquery for the image list; raises Invalid naming the valid targets."""
    names = target_names(session, project_id)
    if not names:
        raise Invalid(
            "This project has no numeric targets to filter on (target filters need a "
            "regression dataset).",
            code="no_targets",
        )
    name = target if target is not None else (names[0] if len(names) == 1 else None)
    if name not in names:
        raise Invalid(
            f"target={target!r} is not a target of this project; use one of: {', '.join(names)}.",
            code="unknown_target",
            details={"valid": names},
        )
    if low is not None and high is not None and low > high:
        raise Invalid(
            f"target_min ({low:g}) is above target_max ({high:g}); give a range low to high.",
            code="invalid_target_range",
        )
    value = col(Annotation.geometry)[("values", names.index(name))].as_float()
    clauses = [col(Annotation.project_id) == project_id, col(Annotation.kind) == VALUE]
    if low is not None:
        clauses.append(value >= low)
    if high is not None:
        clauses.append(value <= high)
    return select(Annotation.image_id).where(*clauses)
