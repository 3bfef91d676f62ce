"""DGReport: a domain-generalisation report over a leave-one-group-out split family.

One experiment per held-out group, all with the same recipe; the figures (in-domain vs
held-out metric per group, the gap, its mean and bootstrap interval) are read from the
experiments when the report is read, so the row only records what was queued.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field


class DGReport(SQLModel, table=True):
    __tablename__ = "dg_report"

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=100)
    family: str = Field(max_length=100)
    config: dict[str, Any] = json_field()
    # [{"split_id", "group", "experiment_id"}] in the family's order
    runs: list[dict[str, Any]] = json_field(list)
    created_at: datetime = created_at_field()


class DGReportCreate(BaseModel):
    """Which family (any one of its splits) and the recipe every experiment gets."""

    model_config = ConfigDict(extra="forbid")

    split_id: int
    config: dict[str, Any] = PydanticField(default_factory=dict)
    name: str = PydanticField("", max_length=60)
