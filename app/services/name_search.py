"""File-name search for the dataset grid: which index the database has, and the filter it makes.

Migration 5c1e2b7d9a41 builds one of three structures, and the search follows it:
- SQLite: an FTS5 trigram table (`image_name_fts`): names *containing* the text, from the
  index for 3 characters or more (a trigram needs three); shorter texts scan the names.
- PostgreSQL with pg_trgm: a GIN trigram index; names containing the text (ILIKE).
- PostgreSQL without pg_trgm (not installed, or no right to create it): a prefix index on
  lower(original_name); names *starting with* the text, so the search stays an index lookup.
Matching ignores letter case everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Integer, column, func, text
from sqlmodel import Session, col

from app.models import Image
from app.models.image import NAME_SEARCH_INDEXES, NAME_SEARCH_TABLE

SearchMode = Literal["contains", "prefix"]
TRIGRAM = 3


@dataclass(frozen=True)
class NameFilter:
    """Either a clause on image rows or a set of image ids (from the FTS table, which holds
    every project's names: not scoped to one project)."""

    clause: Any = None
    ids: Any = None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _index(session: Session) -> str | None:
    """The search structure this database has: the FTS table, one of the indexes, or None."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        found = session.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table' AND name = :name"),
            {"name": NAME_SEARCH_TABLE},
        ).first()
        return NAME_SEARCH_TABLE if found else None
    if bind.dialect.name == "postgresql":
        rows = session.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'image'")
        ).all()
        names = {row[0] for row in rows}
        return next((name for name in NAME_SEARCH_INDEXES if name in names), None)
    return None


def search_mode(session: Session) -> SearchMode:
    """What the search box matches on this database: names containing or starting with it."""
    return "prefix" if _index(session) == "ix_image_name_prefix" else "contains"


def name_filter(session: Session, q: str) -> NameFilter:
    """The grid's `q` as a filter, served by whichever index the database has."""
    index = _index(session)
    name = col(Image.original_name)
    if index == "ix_image_name_prefix":
        pattern = _escape_like(q.lower()) + "%"
        return NameFilter(clause=func.lower(name).like(pattern, escape="\\"))
    if index == NAME_SEARCH_TABLE and len(q) >= TRIGRAM:
        phrase = '"' + q.replace('"', '""') + '"'
        ids = (
            text("SELECT rowid FROM image_name_fts WHERE image_name_fts MATCH :phrase")
            .bindparams(phrase=phrase)
            .columns(column("rowid", Integer))
        )
        return NameFilter(ids=ids)
    pattern = f"%{_escape_like(q)}%"
    # SQLite's LIKE already ignores ASCII case; lower() would only cost time there.
    if session.get_bind().dialect.name == "sqlite":
        return NameFilter(clause=name.like(pattern, "\\"))
    return NameFilter(clause=name.ilike(pattern, "\\"))
