"""Column helpers and the list envelope shared by every resource."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import JSON
from sqlmodel import Field

from app.db import UTCDateTime, utcnow

T = TypeVar("T")


def created_at_field() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def timestamp_field() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


def json_field(default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_type=JSON, nullable=False)


class Page(BaseModel, Generic[T]):
    """Every list answer: `{"items": [...], "total": N, "page": P, "page_size": S}`."""

    items: list[T]
    total: int
    page: int = 1
    page_size: int = 0


__all__ = ["Page", "created_at_field", "datetime", "json_field", "timestamp_field"]
