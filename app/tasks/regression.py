"""Regression, the data half: one or more numeric targets per image.

Targets are `value` annotations ({"values": [...], "names": [...]}: every numeric target
column of a CSV import, by name). Training z-scores them with the train subset's mean and
standard deviation (stored with the model) and every number a user sees is de-normalised.
Splits stratify on quantile bins of the first target, so each subset covers its range.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, StrictBool

from app.errors import Invalid
from app.tasks.hyperparams import StillAugmentations, TrainConfig, task_field
from app.tasks.registry import AnnotationRow, MetricSpec, TaskSpec, register_task

if TYPE_CHECKING:
    from pathlib import Path

    from app.importers.base import Sample
    from app.tasks.mapping import ClassBook, Mapped, Warn

MAX_BINS = 5
IMAGES_PER_BIN = 10


class RegressionConfig(TrainConfig):
    augment: StillAugmentations = Field(default_factory=StillAugmentations)
    loss: Literal["mse", "l1", "huber"] = Field(
        "mse",
        description="mse (squared error), l1 (absolute error) or huber (squared near zero, "
        "absolute beyond delta); on z-scored targets.",
        **task_field(titles={"mse": "MSE", "l1": "L1", "huber": "Huber"}),
    )
    huber_delta: float = Field(
        1.0, gt=0, le=100, description="Huber's delta, in standard deviations of the target."
    )
    normalize_targets: StrictBool = Field(
        True,
        description="Z-score targets with the train subset's mean and standard deviation "
        "(stored with the model; outputs are de-normalised).",
        **task_field(label="Normalise targets"),
    )


def map_sample(
    sample: Sample, w: int, h: int, book: ClassBook, source_root: Path, warn: Warn
) -> list[Mapped]:
    from app.tasks import mapping as m

    return [m.Mapped("value", None, s.geometry) for s in sample.annotations if s.kind == "value"]


def target_names(geometry: dict[str, Any]) -> list[str]:
    """A value annotation's target names (`target`, `target_2`... for older rows without)."""
    values = geometry.get("values") or []
    names = [str(n) for n in geometry.get("names") or []]
    if len(names) != len(values):
        names = ["target" if i == 0 else f"target_{i + 1}" for i in range(len(values))]
    return names


def _values(rows: list[AnnotationRow]) -> dict[int, list[float]]:
    found: dict[int, list[float]] = {}
    for row in rows:
        if row.kind != "value":
            continue
        values = row.geometry.get("values") or []
        try:
            numbers = [float(v) for v in values]
        except (TypeError, ValueError):
            continue
        if numbers and all(math.isfinite(v) for v in numbers):
            found.setdefault(row.image_id, numbers)
    return found


def _names(rows: list[AnnotationRow]) -> list[str]:
    return next((target_names(r.geometry) for r in rows if r.kind == "value"), [])


def quantile_edges(values: list[float], bins: int) -> list[float]:
    """Inner edges of `bins` equal-count bins (duplicates removed: ties share a bin)."""
    ordered = sorted(values)
    edges: list[float] = []
    for k in range(1, bins):
        edge = ordered[min(len(ordered) - 1, round(k * len(ordered) / bins))]
        if edge > ordered[0] and (not edges or edge > edges[-1]):
            edges.append(edge)
    return edges


def stratify(rows: list[AnnotationRow]) -> dict[int, set[str]]:
    """Each image's quantile bin of the first target, as a token naming its range."""
    firsts = {image_id: values[0] for image_id, values in _values(rows).items()}
    if not firsts:
        return {}
    name = (_names(rows) or ["target"])[0]
    bins = max(1, min(MAX_BINS, len(firsts) // IMAGES_PER_BIN))
    edges = quantile_edges(list(firsts.values()), bins)
    bounds = [min(firsts.values()), *edges, max(firsts.values())]
    tokens = []
    for k in range(len(bounds) - 1):
        close = "]" if k == len(bounds) - 2 else ")"
        tokens.append(f"{name} {k + 1}: [{bounds[k]:.4g}, {bounds[k + 1]:.4g}{close}")
    out: dict[int, set[str]] = {}
    for image_id, value in firsts.items():
        index = sum(1 for edge in edges if value >= edge)
        out[image_id] = {tokens[index]}
    return out


def check_training(subsets: dict[str, list[AnnotationRow]], config: dict[str, Any]) -> None:
    """Targets on the training images, and at least one that varies: a constant target leaves
    nothing to learn (and R² undefined)."""
    train = _values(subsets.get("train", []))
    if not train:
        raise Invalid(
            "The split's train subset has no image with numeric targets; import a CSV with "
            "numeric target columns.",
            code="no_targets",
        )
    names = _names(subsets.get("train", []))
    width = min(len(v) for v in train.values())
    constant = []
    for index in range(width):
        column = [values[index] for values in train.values()]
        if max(column) - min(column) <= 1e-12 * max(1.0, abs(column[0])):
            name = names[index] if index < len(names) else f"target {index + 1}"
            constant.append((name, column[0]))
    if constant:
        listed = ", ".join(f"{name!r} is {value:g}" for name, value in constant)
        raise Invalid(
            f"Nothing to learn: on every training image {listed}. A constant target cannot be "
            "predicted better than by itself (R² is undefined); drop the column or add images "
            "where it varies.",
            code="constant_target",
            details={"targets": [name for name, _ in constant]},
        )


METRICS = (
    MetricSpec("r2", "R² (mean over targets)"),
    MetricSpec("mae", "MAE (mean over targets)", mode="min"),
    MetricSpec("rmse", "RMSE (mean over targets)", mode="min"),
    MetricSpec("mse", "MSE (mean over targets)", mode="min"),
)

register_task(
    TaskSpec(
        key="regression",
        title="Regression",
        description="One or more numeric targets per image.",
        annotation_kinds=("value",),
        badge_color="#7c3aed",
        order=60,
        features=frozenset(
            {"projects", "import", "splits", "train", "evaluate", "export", "predict"}
        ),
        default_model="small_cnn",
        primary_metric="val/r2",
        metric_mode="max",
        curve_metrics=("val/r2", "val/mae", "val/rmse"),
        metrics=METRICS,
        summary_metric="r2",
        config_model=RegressionConfig,
        config_defaults={"epochs": 30, "batch_size": 32, "lr": 3e-3, "image_size": 64},
        result_filters=(),
        result_sorts=(
            ("error", "largest error"),
            ("-error", "smallest error"),
            ("loss", "highest loss"),
            ("image", "image id"),
        ),
        parity_note="Values after de-normalisation: max |Δ| ≤ 1e-4 of each target's standard "
        "deviation; the MAE may change by at most 1 % of it.",
        map_sample=map_sample,
        stratify=stratify,
        strata_title="target bins",
        check_training=check_training,
    )
)
