"""Evaluation (1:1 with an experiment) and its per-image results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field, timestamp_field


class Evaluation(SQLModel, table=True):
    __tablename__ = "evaluation"

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", ondelete="CASCADE", unique=True)
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
    __tablename__ = "evaluation_result"
    __table_args__ = (
        Index("ix_evaluation_result_eval_subset", "evaluation_id", "subset"),
        Index(
            "ix_evaluation_result_eval_classes", "evaluation_id", "true_class", "predicted_class"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluation.id", ondelete="CASCADE")
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    subset: str = Field(max_length=16)
    prediction: dict[str, Any] = json_field()
    score: float | None = None
    loss: float | None = None
    correct: bool | None = None
    # Class indices (LabelClass.index order of the model's output) for single-label tasks, so
    # a confusion-matrix cell is one indexed query; None for multi-label results, whose sets
    # live in `prediction`.
    true_class: int | None = None
    predicted_class: int | None = None
