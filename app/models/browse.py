"""Read schemas for browsing a dataset: image lists and details, classes, dataset statistics."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from app.models.common import Page

IMAGE_SORTS = ("name", "-name", "date", "-date", "size", "-size", "class", "-class")
ImageSort = Literal["name", "-name", "date", "-date", "size", "-size", "class", "-class"]
SUBSETS = ("train", "val", "test")

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class ImageQuery(BaseModel):
    """Filters and paging of GET /api/projects/{pid}/images (and the dataset page's grid)."""

    page: int = Field(1, ge=1)
    page_size: int = Field(100, ge=1, le=500)
    class_id: int | None = None
    annotated: bool | None = None
    split_id: int | None = None
    subset: str | None = Field(None, max_length=16)
    attr: str | None = Field(None, max_length=300, description="key=value on image attributes")
    q: str | None = Field(
        None,
        max_length=200,
        description="original file name contains (starts with, on PostgreSQL without pg_trgm)",
    )
    target: str | None = Field(
        None, max_length=100, description="numeric target to filter on (regression)"
    )
    target_min: float | None = Field(None, allow_inf_nan=False, description="target at least")
    target_max: float | None = Field(None, allow_inf_nan=False, description="target at most")
    sort: ImageSort = "name"
    cursor: str | None = Field(
        None,
        max_length=1000,
        description="next_cursor or prev_cursor of an earlier answer (instead of page)",
    )


class ImageRead(BaseModel):
    id: int
    original_name: str
    width: int
    height: int
    channels: int
    format: str
    bytes: int
    sha256: str
    phash: str
    attributes: dict[str, Any]
    created_at: datetime
    class_ids: list[int]
    annotation_count: int
    file_url: str
    thumbnail_url: str
    values: dict[str, float] = {}  # numeric targets by name (regression datasets)


class ImagePage(Page[ImageRead]):
    """A page of the image list; the cursors page on from its last or first row at the same
    cost however deep the page is (page numbers use OFFSET)."""

    next_cursor: str | None = None
    prev_cursor: str | None = None
    search: Literal["contains", "prefix"] = "contains"  # what `q` matches on this database


class ImageNeighbours(BaseModel):
    """Where an image sits in a filtered, sorted list: the ids either side and its position.
    `in_filter` is false (and the rest empty) when the image does not match the filters."""

    image_id: int
    in_filter: bool
    previous: int | None = None
    next: int | None = None
    position: int | None = None  # 1-based
    total: int | None = None


class AnnotationRead(BaseModel):
    id: int
    kind: str
    class_id: int | None
    class_name: str | None
    color: str | None
    geometry: dict[str, Any]
    attributes: dict[str, Any]
    overlay_url: str | None = None  # masks only: a colorized RGBA PNG


class ImageDetail(ImageRead):
    annotations: list[AnnotationRead]
    subsets: dict[str, str]  # split id (as a string) -> subset


ClassName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ClassRead(BaseModel):
    id: int
    name: str
    index: int
    color: str
    parent_id: int | None
    image_count: int
    annotation_count: int


class ClassUpdate(BaseModel):
    """Rename, recolor and/or regroup; send `"parent_id": null` to remove the parent."""

    name: ClassName | None = None
    color: str | None = None
    parent_id: int | None = None

    @field_validator("name")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("must not contain control characters such as newlines or tabs")
        return value

    @field_validator("color")
    @classmethod
    def _hex_color(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not _COLOR.match(value):
            raise ValueError(f"{value!r} is not a color; use #rrggbb, e.g. #1f77b4")
        return value.lower()


class TaxonomyNode(BaseModel):
    """A class with the classes grouped under it."""

    id: int
    name: str
    color: str
    image_count: int
    children: list[TaxonomyNode] = []


class TaxonomyRead(BaseModel):
    """The project's class tree: top-level classes, how deep it goes, and its leaves (the
    classes a hierarchical model predicts)."""

    items: list[TaxonomyNode]
    depth: int
    leaves: list[str]


class ClassCount(BaseModel):
    class_id: int
    name: str
    color: str
    images: int
    annotations: int
    # Mask pixels of this class (semantic masks record them per class and image); None when
    # the project has no pixel counts.
    pixels: int | None = None


class SizeBucket(BaseModel):
    label: str
    min_side: int
    max_side: int | None
    count: int


class Dimension(BaseModel):
    width: int
    height: int
    count: int


class DuplicateGroup(BaseModel):
    image_ids: list[int]
    names: list[str]
    distance: int = 0  # near duplicates: the largest Hamming distance to the group's first


class TargetHistogram(BaseModel):
    """One numeric target's distribution over the dataset (regression)."""

    name: str
    count: int
    min: float
    max: float
    mean: float
    std: float
    edges: list[float]
    counts: list[int]


class DatasetStats(BaseModel):
    image_count: int
    annotated_images: int
    unannotated_images: int
    annotation_count: int
    annotations_by_kind: dict[str, int]
    class_distribution: list[ClassCount]
    size_histogram: list[SizeBucket]
    dimensions: list[Dimension]
    bytes_total: int
    exact_duplicates: list[DuplicateGroup]
    exact_duplicate_groups: int
    near_duplicates: list[DuplicateGroup]
    near_duplicate_threshold: int
    near_duplicates_checked: int  # images that had a perceptual hash
    near_duplicates_truncated: bool
    target_histograms: list[TargetHistogram] = []
