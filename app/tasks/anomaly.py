"""Anomaly detection, the data half: normal versus anomalous images, optional defect masks.

Two modes: unsupervised (the detector learns what normal looks like from normal images only,
the usual case when defects are rare) and supervised (a binary classifier, BCE, when the
training subset holds anomalous images). `mode=auto` picks supervised exactly then. The
detector gives an image score and an anomaly map; the threshold on the score is calibrated on
the validation subset and can be changed later without retraining (`decision_model`).
New splits keep anomalous images out of train (`kept_out_of_train`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.errors import Invalid
from app.tasks.hyperparams import StillAugmentations, TrainConfig, task_field
from app.tasks.registry import AnnotationRow, MetricSpec, TaskSpec, register_task

if TYPE_CHECKING:
    from pathlib import Path

    from app.importers.base import Sample
    from app.tasks.mapping import ClassBook, Mapped, Warn

NORMAL, ANOMALOUS = "normal", "anomalous"
CLASSES = (NORMAL, ANOMALOUS)


class AnomalyConfig(TrainConfig):
    """Lighter augmentation than classification: no geometric change by default, since a
    rotated or mirrored surface may be exactly what a defect looks like."""

    augment: StillAugmentations = Field(default_factory=StillAugmentations)
    mode: Literal["auto", "unsupervised", "supervised"] = Field(
        "auto",
        description="unsupervised learns from normal images only; supervised trains a binary "
        "classifier (BCE) on normal and anomalous images; auto: supervised when the training "
        "subset holds anomalous images.",
        **task_field(
            titles={
                "auto": "Auto (from the data)",
                "unsupervised": "Unsupervised (normal images only)",
                "supervised": "Supervised (binary classifier)",
            }
        ),
    )
    target_fpr: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="False-alarm rate on normal validation images the threshold allows when "
        "the validation subset has no anomalous image (otherwise: the threshold of maximum F1).",
        **task_field(label="Target false-alarm rate"),
    )
    synthetic_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Unsupervised segmentation: share of training images given a synthetic "
        "defect (a blob of another image's texture) to learn to find.",
        **task_field(label="Synthetic defect share"),
    )


class AnomalyDecision(BaseModel):
    """What reading the detector's outputs depends on that may change after training."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    threshold: float = Field(
        ge=-1e9, le=1e9, description="Images scoring at or above it are anomalous."
    )


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
                out.append(m.Mapped("mask", ANOMALOUS, {}, {}, mask))
    return out


def image_verdicts(rows: list[AnnotationRow]) -> dict[int, str]:
    """normal / anomalous per image: anomalous when any label or mask says so."""
    verdicts: dict[int, str] = {}
    for row in rows:
        if row.class_name == ANOMALOUS:
            verdicts[row.image_id] = ANOMALOUS
        elif row.class_name == NORMAL:
            verdicts.setdefault(row.image_id, NORMAL)
    return verdicts


def check_training(subsets: dict[str, list[AnnotationRow]], config: dict[str, Any]) -> None:
    """An anomaly detector needs normal training images; supervised mode needs anomalies."""
    verdicts = image_verdicts(subsets.get("train", []))
    normal = sum(1 for v in verdicts.values() if v == NORMAL)
    anomalous = len(verdicts) - normal
    if not normal:
        raise Invalid(
            f"The split's train subset has no normal image ({anomalous} anomalous); an anomaly "
            "detector learns what normal looks like. Make a split with normal images in train.",
            code="no_normal_images",
            details={"train_normal": 0, "train_anomalous": anomalous},
        )
    if config.get("mode") == "supervised" and not anomalous:
        raise Invalid(
            "mode=supervised needs anomalous images in the train subset and it has none; use "
            "mode=unsupervised (or auto), or a split that lets anomalies into train.",
            code="no_anomalous_images",
            details={"train_normal": normal, "train_anomalous": 0},
        )


METRICS = (
    MetricSpec("auroc", "Image AUROC", percent=True),
    MetricSpec("f1", "F1 at the threshold", percent=True),
    MetricSpec("precision", "Precision at the threshold", percent=True),
    MetricSpec("recall", "Recall at the threshold", percent=True),
    MetricSpec("accuracy", "Accuracy at the threshold", percent=True),
    MetricSpec("pixel_auroc", "Pixel AUROC", percent=True),
    MetricSpec("aupro", "AUPRO (FPR ≤ 30 %)", percent=True),
)

register_task(
    TaskSpec(
        key="anomaly",
        title="Anomaly detection",
        description="Normal versus anomalous images, optionally with defect masks.",
        annotation_kinds=("label", "mask"),
        badge_color="#dc2626",
        order=50,
        features=frozenset(
            {"projects", "import", "splits", "train", "evaluate", "export", "predict"}
        ),
        default_model="anomaly_unet",
        primary_metric="val/auroc",
        curve_metrics=("val/auroc", "val/f1", "val/pixel_auroc"),
        metrics=METRICS,
        summary_metric="auroc",
        config_model=AnomalyConfig,
        config_defaults={
            "epochs": 40,
            "batch_size": 16,
            "lr": 2e-3,
            "warmup_epochs": 1.0,
            "scheduler": "cosine",
        },
        result_filters=("outcome", "cell"),
        result_sorts=(
            ("confidence", "highest score"),
            ("-confidence", "lowest score"),
            ("error", "most wrong"),
            ("image", "image id"),
        ),
        score_percent=False,
        parity_note="Scores: max |Δ| ≤ 1e-4 of the validation score range; single map "
        "pixels: max |Δ| ≤ 1e-3 of it; image AUROC may change by at most 0.005 (INT8: verdicts "
        "agree on ≥ 95 % and AUROC drops ≤ 0.02).",
        map_sample=map_sample,
        kept_out_of_train=(ANOMALOUS,),
        check_training=check_training,
        decision_model=AnomalyDecision,
    )
)
