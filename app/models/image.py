"""Image and Annotation: the dataset rows; annotations are normalized per kind."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel

from app.models.common import created_at_field, json_field

# Annotation kinds and their geometry JSON (pixel coordinates of the stored image):
#   label    {}                                       (image-level class)
#   bbox     {"x": .., "y": .., "w": .., "h": ..}
#   polygon  {"points": [[x, y], ...]}  (several rings: {"rings": [[[x, y], ...], ...]})
#   mask     {"path": "<workspace-relative PNG>"}  (index mask of the class, 255 = ignore)
#   obb      {"cx": .., "cy": .., "w": .., "h": .., "angle": degrees}
#   value    {"values": [float, ...]}               (regression targets)
ANNOTATION_KINDS = ("label", "bbox", "polygon", "mask", "obb", "value")
UNLABELLED_SORT = 2**31 - 1  # sorts images without a class after every class
# File-name search structures that migration 5c1e2b7d9a41 creates outside SQLModel's metadata
# (an FTS5 table with its shadow tables on SQLite, a trigram or prefix index on PostgreSQL);
# autogenerate leaves them alone (migrations/env.py) and app.services.name_search uses them.
NAME_SEARCH_TABLE = "image_name_fts"
NAME_SEARCH_INDEXES = ("ix_image_name_trgm", "ix_image_name_prefix")


class Image(SQLModel, table=True):
    """One stored image; the original name is display metadata, the stored path is generated."""

    __tablename__ = "image"
    __table_args__ = (
        Index("ix_image_project_id_id", "project_id", "id"),
        Index("ix_image_project_sha256", "project_id", "sha256"),
        Index("ix_image_project_original_name", "project_id", "original_name"),
        # The dataset grid pages through these orders (benchmarks/browse_speed.py).
        Index("ix_image_project_created_at", "project_id", "created_at"),
        Index("ix_image_project_bytes", "project_id", "bytes"),
        Index("ix_image_project_sort_class", "project_id", "sort_class", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE")
    import_id: int | None = Field(
        default=None, foreign_key="dataset_import.id", ondelete="SET NULL", index=True
    )
    stored_path: str = Field(max_length=500)
    thumb_path: str | None = Field(default=None, max_length=500)
    original_name: str = Field(max_length=1000)
    width: int
    height: int
    channels: int
    format: str = Field(max_length=16)
    bytes: int
    sha256: str = Field(max_length=64)
    phash: str = Field(default="", max_length=32)
    attributes: dict[str, Any] = json_field()
    created_at: datetime = created_at_field()
    # Derived, for the grid's "sort by class": the smallest class index among the image's
    # annotations, UNLABELLED_SORT when it has none. Kept by app.services.image_index.
    sort_class: int = Field(
        default=UNLABELLED_SORT, sa_column_kwargs={"server_default": str(UNLABELLED_SORT)}
    )


class ImageAttribute(SQLModel, table=True):
    """One scalar of Image.attributes as text, so an attribute filter reads an index instead of
    parsing every image's JSON. Derived; kept by app.services.image_index."""

    __tablename__ = "image_attribute"
    __table_args__ = (Index("ix_image_attribute_lookup", "project_id", "key", "value", "image_id"),)

    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE", primary_key=True)
    key: str = Field(max_length=100, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE")
    value: str = Field(max_length=300)


class Annotation(SQLModel, table=True):
    """One label, box, polygon, mask, oriented box or regression value on an image."""

    __tablename__ = "annotation"
    __table_args__ = (
        Index("ix_annotation_project_class", "project_id", "class_id"),
        # The grid's class filter reads a class's image ids straight from this index.
        Index("ix_annotation_class_image", "class_id", "image_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE")
    image_id: int = Field(foreign_key="image.id", ondelete="CASCADE", index=True)
    class_id: int | None = Field(default=None, foreign_key="label_class.id", ondelete="CASCADE")
    kind: str = Field(max_length=16)
    geometry: dict[str, Any] = json_field()
    attributes: dict[str, Any] = json_field()


class BrowseVersion(SQLModel, table=True):
    """A project's data version for the image list: triggers (migration 0e2fdd88d1db)
    bump it in the same transaction as every write to a table the list reads, so a cached
    answer keyed by it (app.services.browse_cache) is never older than the version it names.
    A table of its own rather than a column of project: editing a project's name or
    description does not contend with the writers that bump it."""

    __tablename__ = "browse_version"

    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE", primary_key=True)
    version: int = Field(default=0, sa_type=BigInteger, nullable=False)
