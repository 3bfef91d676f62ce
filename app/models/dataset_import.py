"""Import: one run of reading a dataset source into a project (the job does the work)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field, timestamp_field


class DatasetImport(SQLModel, table=True):
    __tablename__ = "dataset_import"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE", index=True)
    job_id: int | None = Field(default=None, foreign_key="job.id", ondelete="SET NULL")
    source: str = Field(max_length=2000)
    format: str | None = Field(default=None, max_length=40)
    status: str = Field(default="queued", max_length=20)
    counts: dict[str, Any] = json_field()
    warnings: list[Any] = json_field(list)
    errors: list[Any] = json_field(list)
    created_at: datetime = created_at_field()
    finished_at: datetime | None = timestamp_field()
