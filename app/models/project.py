"""Project and LabelClass: the root aggregate every other row hangs from."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, StringConstraints, field_validator
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field

ProjectName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


def _no_control_characters(value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters such as newlines or tabs")
    return value


class Project(SQLModel, table=True):
    """A named body of work with one task type; owns its images, splits and experiments."""

    __tablename__ = "project"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    # Case-folded name: "Digits" and "digits" would be confusing side by side, so they clash.
    name_key: str = Field(max_length=100, unique=True, index=True)
    task_type: str = Field(max_length=40, index=True)
    description: str = Field(default="", max_length=2000)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class ProjectCreate(BaseModel):
    name: ProjectName
    task_type: str
    description: Description = ""

    _clean_name = field_validator("name")(_no_control_characters)


class ProjectUpdate(BaseModel):
    name: ProjectName | None = None
    description: Description | None = None

    _clean_name = field_validator("name")(_no_control_characters)


class ProjectCounts(BaseModel):
    images: int = 0
    classes: int = 0
    splits: int = 0
    experiments: int = 0


class ProjectRead(BaseModel):
    id: int
    name: str
    task_type: str
    task_title: str
    description: str
    created_at: datetime
    updated_at: datetime
    counts: ProjectCounts


class LabelClass(SQLModel, table=True):
    """A class of the project's taxonomy; parent_id points at its coarse group, if any."""

    __tablename__ = "label_class"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_label_class_name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=200)
    index: int = Field(default=0)
    color: str = Field(default="#888888", max_length=9)
    parent_id: int | None = Field(
        default=None, foreign_key="label_class.id", ondelete="SET NULL", index=True
    )
    created_at: datetime = created_at_field()
