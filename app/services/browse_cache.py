"""Page anchors and totals of the image list, cached per project data version, so a numbered
page deep into a large result costs what a cursor page does.

A B-tree keeps no subtree counts, so the k-th match of a filter in sort order costs Θ(k) (an
OFFSET walk) or Θ(matches) (sorting them all). This cache remembers, per query, the total and
the (sort value, id) of the last row of every page: page p is then an index range from page
p-1's last row (`image_paging.beyond`, as a cursor page is). Building the anchors costs one
pass over the sorted matches (a window `row_number()`); that is paid by the first visit to a
deep page after a write, and every later page of that query at that version is a hit.

Why a cached entry is never older than its key: `browse_version.version` (migration
0e2fdd88d1db) is bumped by triggers in the same transaction as every write to a table the
list reads, so it becomes visible together with that write. The version is read *before*
anything that goes into an entry is computed, hence the entry's rows were read from a database
state at least as new as that version. A later write bumps the version; readers that see it
miss the old entry and build a new one. (An entry may hold data newer than its version, when a
write commits between reading the version and computing: a reader that still sees the old
version then gets answers as new as any it could read itself.) Nothing here is trusted across
versions, so a write never needs to reach this process to invalidate it.

The key also holds the database URL and the project's creation time (tests and the benchmark
keep several databases in one process, and SQLite may reuse a deleted project's id: the
version row goes with the project, so a new project's versions start again at 1), and for a
name search what the database's name index matches (a property of the schema, not the data).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.models import BrowseVersion, Image, Project
from app.models.browse import ImageQuery
from app.services import image_paging as paging
from app.services import name_search

# Queries remembered per process (least recently used dropped first).
MAX_ENTRIES = 64
# Queries with more pages than this keep the OFFSET path: an entry holds at most this many
# (value, id) pairs: 0.85 MB with 26-character names (measured), so 64 entries stay near 55 MB.
MAX_ANCHORS = 5_000
# Pages this close to either end of the result are read by OFFSET from the nearer end, which
# costs about what a keyset page does; anchors are built for pages deeper than this.
NEAR_END = 3

Key = tuple[str, int, datetime, str, int]
Anchor = tuple[Any, int]  # (sort value, image id) of a page's last row


@dataclass(frozen=True)
class Entry:
    total: int
    anchors: tuple[Anchor, ...] | None = None  # None: only the total is known so far


class _Lru:
    """A small LRU map; the web process answers requests on several threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Key, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> Entry | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def put(self, key: Key, entry: Entry) -> None:
        with self._lock:
            self._items[key] = entry
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CACHE = _Lru(MAX_ENTRIES)


def clear() -> None:
    """Forget every entry (tests compare cached answers with uncached ones)."""
    _CACHE.clear()


def version(session: Session, project_id: int) -> int:
    """The project's data version (0 before its first write since the migration)."""
    found = session.exec(
        select(BrowseVersion.version).where(col(BrowseVersion.project_id) == project_id)
    ).first()
    return int(found or 0)


def key(session: Session, project: Project, query: ImageQuery) -> Key:
    """The cache key of this query: read it before computing anything the entry will hold.
    The filters digest covers every field of the query but the position (sort and page size
    included)."""
    assert project.id is not None
    url = session.get_bind().engine.url.render_as_string(hide_password=True)
    stamp = version(session, project.id)
    digest = paging.filters_digest(query)
    if query.q:  # what a name search matches follows the index the database has
        digest += name_search.search_mode(session)
    return (url, project.id, project.created_at, digest, stamp)


def get(found: Key) -> Entry | None:
    return _CACHE.get(found)


def keep_total(found: Key, total: int) -> None:
    """Remember a total counted under this key (the first pages count it anyway)."""
    if _CACHE.get(found) is None:
        _CACHE.put(found, Entry(total=total))


def anchor(
    session: Session,
    found: Key,
    where: Callable[[], Any],
    sort: str,
    page: int,
    size: int,
    total: int,
) -> Anchor | None:
    """The last row of page `page - 1` (page ≥ 2, within the result): from the entry, or
    after building every anchor in one query. None when the result has too many pages."""
    entry = _CACHE.get(found)
    if entry is None or entry.anchors is None:
        if total // size > MAX_ANCHORS:
            return None
        entry = Entry(total=total, anchors=_build(session, where(), sort, size))
        _CACHE.put(found, entry)
    assert entry.anchors is not None
    index = page - 2
    return entry.anchors[index] if 0 <= index < len(entry.anchors) else None


def _build(session: Session, where: Any, sort: str, size: int) -> tuple[Anchor, ...]:
    """Every size-th row of the sorted matches: a window row number over one pass."""
    number = func.row_number().over(order_by=paging.order(sort)).label("number")
    value = paging.sort_column(sort).label("value")
    rows = select(col(Image.id).label("id"), value, number).where(where).subquery()
    found = session.exec(
        select(rows.c.value, rows.c.id).where(rows.c.number % size == 0).order_by(rows.c.number)
    ).all()
    return tuple((v, int(i)) for v, i in found)
