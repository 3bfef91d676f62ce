"""Paging for the image list: sort orders, the page queries, "rows after this one" clauses and
the opaque cursor the list returns beside its page numbers.

A page reached by a cursor costs the same at page 1 and page 1,000 (an index range from the
last row seen), while a page number needs OFFSET, which steps over every skipped row. The
cursor carries the sort, the last (or first) row's sort value and id, the page number it
leads to, the total counted for the first page (paging on does not count again, so a total
can be as old as the first page) and a digest of the filters, so it cannot be replayed on
another query.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from app.errors import Invalid
from app.models import Image
from app.models.browse import ImageQuery

SORT_COLUMNS: dict[str, Any] = {
    "name": Image.original_name,
    "date": Image.created_at,
    "size": Image.bytes,
    # The image's first class in class order (Image.sort_class); unlabelled last.
    "class": Image.sort_class,
}
# Every filter the list takes (a cursor is only valid for the same filters): all query fields
# but the position, so a filter added to ImageQuery is covered without touching this module.
_FILTER_FIELDS = tuple(name for name in ImageQuery.model_fields if name not in ("page", "cursor"))


def sort_column(sort: str) -> Any:
    """The column a sort key orders by (without its direction)."""
    return col(SORT_COLUMNS[sort.lstrip("-")])


def order(sort: str, *, reverse: bool = False) -> list[Any]:
    """ORDER BY for a sort key (prefix "-" descending), ties broken by id the same way."""
    descending = sort.startswith("-") != reverse
    column, key = sort_column(sort), col(Image.id)
    return [column.desc(), key.desc()] if descending else [column.asc(), key.asc()]


def beyond(sort: str, value: Any, image_id: int, *, forward: bool = True) -> Any:
    """Rows after (forward) or before the row (value, image_id) in the sort's order."""
    column, key = sort_column(sort), col(Image.id)
    later = forward != sort.startswith("-")
    # The bare bound (column >= value) lets the database start an index range there; the OR
    # then only trims the rows that tie with the cursor's row.
    if later:
        return and_(column >= value, or_(column > value, key > image_id))
    return and_(column <= value, or_(column < value, key < image_id))


def page_ids(
    session: Session, where: Any, sort: str, *, reverse: bool, offset: int, size: int
) -> list[int]:
    """Deferred join: page through ids on an index (cheap to skip), then load only the rows of
    the page. Reversed pages are read backwards and returned in the sort's order."""
    ids = [
        int(i)
        for i in session.exec(
            select(Image.id)
            .where(where)
            .order_by(*order(sort, reverse=reverse))
            .offset(offset)
            .limit(size)
        ).all()
        if i is not None
    ]
    return ids[::-1] if reverse else ids


def page_counted(
    session: Session, where: Any, sort: str, page: int, size: int
) -> tuple[list[int], int]:
    """A page by OFFSET and the number of all matches, from one query (a window count) that
    sorts every match: for filters known to match few images. The count is -1 past the end,
    where no row carries it."""
    rows = session.exec(
        select(Image.id, func.count().over())
        .where(where)
        .order_by(*order(sort))
        .offset((page - 1) * size)
        .limit(size)
    ).all()
    if not rows:
        return [], -1
    return [int(i) for i, _ in rows if i is not None], int(rows[0][1])


def sort_value(image: Image, sort: str) -> Any:
    return getattr(image, SORT_COLUMNS[sort.lstrip("-")].key)


def filters_digest(query: ImageQuery) -> str:
    fields = {name: getattr(query, name) for name in _FILTER_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Cursor:
    sort: str
    value: Any
    image_id: int
    page: int  # the page number this cursor leads to
    forward: bool  # rows after the row (next page) or before it (previous page)
    digest: str
    total: int  # the filters' match count when the first page was answered


def encode(cursor: Cursor) -> str:
    value = cursor.value.isoformat() if isinstance(cursor.value, datetime) else cursor.value
    raw = [
        1,
        cursor.sort,
        value,
        cursor.image_id,
        cursor.page,
        cursor.forward,
        cursor.digest,
        cursor.total,
    ]
    text = base64.urlsafe_b64encode(json.dumps(raw, separators=(",", ":")).encode()).decode()
    return text.rstrip("=")  # URL-safe as it stands; decode() restores the padding


def decode(token: str, query: ImageQuery) -> Cursor:
    """The cursor of a previous answer to this same query; Invalid otherwise."""
    try:
        version, sort, value, image_id, page, forward, digest, total = json.loads(
            base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
        )
        numbers = (image_id, page, total)
        if version != 1 or not all(isinstance(n, int) and n >= 0 for n in numbers):
            raise ValueError
        if sort.lstrip("-") == "date":
            value = datetime.fromisoformat(value)
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        raise Invalid(
            "cursor is not a cursor this list returned; use next_cursor or prev_cursor from "
            "a previous answer, or page numbers.",
            code="invalid_cursor",
        ) from None
    if sort != query.sort or digest != filters_digest(query):
        raise Invalid(
            "This cursor belongs to other filters, sort or page size; start again without it "
            "(or with page=N).",
            code="cursor_mismatch",
        )
    return Cursor(sort, value, image_id, max(1, page), bool(forward), digest, total)


def cursor_at(image: Image, query: ImageQuery, *, page: int, forward: bool, total: int) -> str:
    assert image.id is not None
    value = sort_value(image, query.sort)
    digest = filters_digest(query)
    return encode(Cursor(query.sort, value, image.id, page, forward, digest, total))
