"""Export: a model file made from a checkpoint, with its parity report and metadata."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field, timestamp_field


class Export(SQLModel, table=True):
    __tablename__ = "export"

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", ondelete="CASCADE", index=True)
    checkpoint: str = Field(max_length=40)
    format: str = Field(max_length=20)
    options: dict[str, Any] = json_field()
    status: str = Field(default="queued", max_length=20)
    job_id: int | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL")
    path: str | None = Field(default=None, max_length=500)
    bytes: int | None = None
    valid: bool | None = None
    validation: dict[str, Any] = json_field()
    # Named `meta` because SQLModel reserves `metadata`; the API calls it "metadata".
    meta: dict[str, Any] = json_field()
    created_at: datetime = created_at_field()
    finished_at: datetime | None = timestamp_field()
