"""Derived columns and rows that let the dataset grid filter and sort on indexes: each image's
sort class (Image.sort_class) and its scalar attributes as rows (ImageAttribute).

Whoever writes images or their annotations calls `refresh` with the ids in the same
transaction: the importer, and the test and benchmark factories that insert rows directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, update
from sqlmodel import Session, col, select

from app.models import UNLABELLED_SORT, Annotation, Image, ImageAttribute, LabelClass

CHUNK = 500
MAX_KEY = 100
MAX_VALUE = 300


def attribute_text(value: Any) -> str | None:
    """The text an attribute filter `key=value` compares with: strings as they are, other
    scalars as JSON (`true`, `3`, `0.5`); lists, objects and null are not filterable."""
    if isinstance(value, str):
        return value[:MAX_VALUE]
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def attribute_rows(attributes: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in attributes.items():
        text = attribute_text(value)
        if text is not None and len(key) <= MAX_KEY:
            yield key, text


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def refresh(session: Session | Connection, image_ids: Sequence[int]) -> None:
    """Recompute both for these images (a Connection works too, for bulk loaders)."""
    first_class = (
        select(func.min(col(LabelClass.index)))
        .join(Annotation, col(Annotation.class_id) == col(LabelClass.id))
        .where(col(Annotation.image_id) == col(Image.id))
        .correlate(Image)
        .scalar_subquery()
    )
    for chunk in _chunks(list(image_ids)):
        session.execute(
            update(Image)
            .where(col(Image.id).in_(chunk))
            .values(sort_class=func.coalesce(first_class, UNLABELLED_SORT))
        )
        session.execute(delete(ImageAttribute).where(col(ImageAttribute.image_id).in_(chunk)))
        rows = session.execute(
            select(Image.id, Image.project_id, Image.attributes).where(col(Image.id).in_(chunk))
        ).all()
        values = [
            {"image_id": image_id, "project_id": project_id, "key": key, "value": text}
            for image_id, project_id, attributes in rows
            for key, text in attribute_rows(attributes or {})
        ]
        if values:
            session.execute(insert(ImageAttribute), values)
