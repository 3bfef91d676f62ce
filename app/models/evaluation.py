"""Evaluations of an experiment, their per-image results and match rows (task-neutral).

An experiment keeps its last completed evaluation until a newer one completes: a failed or
cancelled re-run never destroys the good results (the newer row shows as the attempt)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import field_validator
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field, timestamp_field
from app.models.job import JobRead


class Evaluation(SQLModel, table=True):
    __tablename__ = "evaluation"

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", ondelete="CASCADE", index=True)
    checkpoint: str = Field(max_length=40)
    subsets: list[str] = json_field(list)
    options: dict[str, Any] = json_field()
    status: str = Field(default="queued", max_length=20)
    job_id: int | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL")
    aggregate: dict[str, Any] = json_field()
    audit: dict[str, Any] = json_field()
    created_at: datetime = created_at_field()
    finished_at: datetime | None = timestamp_field()


class EvaluationResult(SQLModel, table=True):
    """One evaluated image, for any task. `prediction` holds "truth" and "predicted" lists in
    the annotation geometry format (plus task extras); `error` is the task's error measure
    (wrong labels, FP + FN, misclassified pixel share...), the default sort."""

    __tablename__ = "evaluation_result"
    __table_args__ = (
        Index("ix_evaluation_result_eval_subset", "evaluation_id", "subset"),
        Index("ix_evaluation_result_eval_image", "evaluation_id", "image_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluation.id", ondelete="CASCADE")
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    subset: str = Field(max_length=16)
    prediction: dict[str, Any] = json_field()
    score: float | None = None
    loss: float | None = None
    error: float | None = None
    correct: bool | None = None


class EvaluationMatch(SQLModel, table=True):
    """A true/predicted class pair on an evaluated image (class indices in the model's output
    order; None = background: a missed object has no predicted class, a false detection no
    true class). Every confusion-matrix cell of every task is one indexed query here."""

    __tablename__ = "evaluation_match"
    __table_args__ = (
        Index("ix_evaluation_match_cell", "evaluation_id", "true_class", "predicted_class"),
        Index("ix_evaluation_match_image", "evaluation_id", "image_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluation.id", ondelete="CASCADE")
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    subset: str = Field(max_length=16)
    true_class: int | None = None
    predicted_class: int | None = None
    iou: float | None = None
    score: float | None = None


# --- API schemas ------------------------------------------------------------------------------

EVALUATION_SUBSETS = ("train", "val", "test")
TTA_OPTIONS = ("hflip", "multiscale")


class EvaluationStart(SQLModel):
    """What to evaluate: a checkpoint of the experiment and subsets of its split (combinable)."""

    checkpoint: str = Field(default="best", min_length=1, max_length=40)
    subsets: list[Literal["train", "val", "test"]] = Field(
        default_factory=lambda: ["test"], min_length=1, max_length=3
    )
    batch_size: int = Field(default=64, ge=1, le=1024)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tta: list[Literal["hflip", "multiscale"]] = Field(default_factory=list, max_length=2)

    @field_validator("subsets", "tta")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class CheckpointRead(SQLModel):
    name: str
    path: str
    epoch: int | None = None
    metric: float | None = None
    saved_at: str | None = None
    bytes: int


class EvaluationRead(SQLModel):
    id: int
    experiment_id: int
    checkpoint: str
    subsets: list[str]
    options: dict[str, Any]
    status: str
    job_id: int | None
    aggregate: dict[str, Any]
    audit: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    job: JobRead | None = None
    # The evaluated checkpoint file was replaced since (the experiment trained again).
    stale: bool = False
    # A newer run than this one that has not completed (queued, running, failed, cancelled):
    # {"id", "status", "error", "checkpoint", "subsets", "job_id", "job"}.
    attempt: dict[str, Any] | None = None


class EvaluationStarted(SQLModel):
    evaluation: EvaluationRead
    job: JobRead


class EvaluationResultRead(SQLModel):
    id: int
    image_id: int
    original_name: str
    width: int = 0
    height: int = 0
    subset: str
    prediction: dict[str, Any]
    score: float | None
    loss: float | None
    error: float | None
    correct: bool | None
    thumbnail_url: str
    file_url: str
