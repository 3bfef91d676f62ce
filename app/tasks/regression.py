"""Regression, the data half: one or more numeric targets per image."""

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
    from app.tasks import mapping as m

    return [m.Mapped("value", None, s.geometry) for s in sample.annotations if s.kind == "value"]


register_task(
    TaskSpec(
        key="regression",
        title="Regression",
        description="One or more numeric targets per image.",
        annotation_kinds=("value",),
        badge_color="#7c3aed",
        order=60,
        primary_metric="val/mae",
        metric_mode="min",
        map_sample=map_sample,
    )
)
