"""Split and SplitMember: immutable assignments of images to subsets (and folds)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field


class Split(SQLModel, table=True):
    __tablename__ = "split"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_split_name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=100)
    strategy: str = Field(max_length=40)
    params: dict[str, Any] = json_field()
    seed: int = 0
    locked: bool = True
    fingerprint: str = Field(default="", max_length=64)
    family: str | None = Field(default=None, max_length=100)
    counts: dict[str, Any] = json_field()
    created_at: datetime = created_at_field()


class SplitMember(SQLModel, table=True):
    __tablename__ = "split_member"
    __table_args__ = (
        Index("ix_split_member_split_subset", "split_id", "subset"),
        Index("ix_split_member_image", "image_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    split_id: int = Field(foreign_key="split.id", ondelete="CASCADE")
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE")
    subset: str = Field(max_length=16)
    fold: int | None = None
