"""Experiment and MetricPoint: one training configuration, its run state and its curves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field, timestamp_field


class Experiment(SQLModel, table=True):
    __tablename__ = "experiment"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_experiment_name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE", index=True)
    # No cascade: a split that trained an experiment must outlive it (evaluation isolation);
    # the default NO ACTION still lets a project delete take both in one statement.
    split_id: int | None = Field(default=None, foreign_key="split.id", index=True)
    name: str = Field(max_length=100)
    model_id: str = Field(default="", max_length=100)
    config: dict[str, Any] = json_field()
    status: str = Field(default="created", max_length=20)
    job_id: int | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL")
    checkpoints: dict[str, Any] = json_field()
    best_metric: float | None = None
    best_metric_key: str | None = Field(default=None, max_length=60)
    provenance: dict[str, Any] = json_field()
    epochs_done: int = 0
    created_at: datetime = created_at_field()
    started_at: datetime | None = timestamp_field()
    finished_at: datetime | None = timestamp_field()


class MetricPoint(SQLModel, table=True):
    __tablename__ = "metric_point"
    __table_args__ = (Index("ix_metric_point_experiment_key_step", "experiment_id", "key", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", ondelete="CASCADE")
    step: int
    epoch: int
    key: str = Field(max_length=60)
    value: float
    created_at: datetime = created_at_field()
