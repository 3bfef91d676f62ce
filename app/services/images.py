"""Images: the filtered, sorted list behind the dataset grid and details with annotations.
Their bytes (file, thumbnail, mask overlay) are in app.services.image_files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, distinct, exists, func
from sqlmodel import Session, col, select

from app.errors import Invalid, not_found
from app.models import Annotation, Image, ImageAttribute, LabelClass, Split, SplitMember
from app.models.browse import (
    SUBSETS,
    AnnotationRead,
    ImageDetail,
    ImageNeighbours,
    ImagePage,
    ImageQuery,
    ImageRead,
)
from app.services import browse_cache, name_search, targets
from app.services import image_paging as paging
from app.services.projects import get_project


def _urls(project_id: int, image: Image) -> tuple[str, str]:
    # The content hash in the URL changes when the bytes do, so the browser may cache freely.
    base = f"/api/projects/{project_id}/images/{image.id}"
    version = image.sha256[:16]
    return f"{base}/file?v={version}", f"{base}/thumbnail?v={version}"


def _parse_attr(attr: str) -> tuple[str, str]:
    key, sep, value = attr.partition("=")
    key = key.strip()
    if not sep or not key:
        raise Invalid(
            f"attr={attr!r} is not a filter; use key=value, e.g. attr=source=camera1.",
            code="invalid_attribute_filter",
        )
    return key, value.strip()


@dataclass
class _Filters:
    """The list's filters: plain clauses on image rows, and sets of image ids (a class's images,
    a split subset's members) kept apart so the count and the page can use their indexes."""

    clauses: list[Any]
    members: list[Any]
    scoped: bool = True  # every id set holds only this project's images
    # At most this many images match (known for a rare name trigram): few enough to sort them
    # all in the query that also counts them.
    bound: int | None = None

    def where(self, *, walk: bool = False) -> Any:
        # `id + 0` hides the primary key from SQLite's planner, so it walks the ORDER BY index
        # and probes the id set instead of loading every member row and sorting them.
        key = col(Image.id) + 0 if walk else col(Image.id)
        return and_(*self.clauses, *(key.in_(m) for m in self.members))


def _filtered(session: Session, project_id: int, query: ImageQuery) -> _Filters:
    """Validate the filters against the project and turn them into clauses and id sets."""
    clauses: list[Any] = [col(Image.project_id) == project_id]
    members: list[Any] = []
    if query.class_id is not None:
        label_class = session.get(LabelClass, query.class_id)
        if label_class is None or label_class.project_id != project_id:
            raise not_found("class", query.class_id)
        members.append(
            select(Annotation.image_id).where(col(Annotation.class_id) == query.class_id)
        )
    if query.annotated is not None:
        has_any = exists().where(col(Annotation.image_id) == col(Image.id))
        clauses.append(has_any if query.annotated else ~has_any)
    if query.subset is not None and query.subset not in SUBSETS:
        raise Invalid(
            f"subset={query.subset!r} is not a subset; use one of: {', '.join(SUBSETS)}.",
            code="invalid_subset",
        )
    if query.split_id is not None:
        split = session.get(Split, query.split_id)
        if split is None or split.project_id != project_id:
            raise not_found("split", query.split_id)
        member = [col(SplitMember.split_id) == query.split_id]
        if query.subset is not None:
            member.append(col(SplitMember.subset) == query.subset)
        members.append(select(SplitMember.image_id).where(*member))
    elif query.subset is not None:
        raise Invalid(
            "subset needs split_id: a subset only exists within a split.",
            code="subset_needs_split",
        )
    if query.attr:
        key, value = _parse_attr(query.attr)
        members.append(
            select(ImageAttribute.image_id).where(
                col(ImageAttribute.project_id) == project_id,
                col(ImageAttribute.key) == key,
                col(ImageAttribute.value) == value,
            )
        )
    if query.target is not None or query.target_min is not None or query.target_max is not None:
        members.append(
            targets.range_filter(
                session, project_id, query.target, query.target_min, query.target_max
            )
        )
    scoped, bound = True, None
    if query.q:
        found = name_search.name_filter(session, query.q)
        if found.ids is not None:
            members.append(found.ids)
            scoped = False  # the name index holds every project's names
        if found.clause is not None:
            clauses.append(found.clause)
        bound = found.bound
    return _Filters(clauses=clauses, members=members, scoped=scoped, bound=bound)


def _count(session: Session, filters: _Filters) -> int:
    if len(filters.clauses) == 1 and len(filters.members) == 1 and filters.scoped:
        # Only a class or a split subset: count its ids on their own index.
        ids = filters.members[0].subquery()
        return int(session.exec(select(func.count(distinct(ids.c.image_id)))).one())
    return int(session.exec(select(func.count()).select_from(Image).where(filters.where())).one())


def _walk(session: Session, project_id: int, rows: int, total: int) -> bool:
    """Whether walking the sort index beats sorting all matches, for an id-set filter.

    Walking visits about `rows` (offset + limit) * N / M rows for M matches of N images; sorting
    loads and orders all M. The id range stands in for N (imports make contiguous ids).
    """
    if not total:
        return False
    # Two queries: SQLite answers a lone min() or max() from the index, both together by a scan.
    in_project = col(Image.project_id) == project_id
    low = session.exec(select(func.min(Image.id)).where(in_project)).one()
    high = session.exec(select(func.max(Image.id)).where(in_project)).one()
    if low is None or high is None:
        return False
    images = high - low + 1
    return rows * images <= 4 * total * total


def _class_ids(session: Session, image_ids: list[int]) -> dict[int, tuple[list[int], int]]:
    """Per image: distinct class ids (in first-seen order) and the annotation count."""
    found: dict[int, tuple[list[int], int]] = {i: ([], 0) for i in image_ids}
    if not image_ids:
        return found
    rows = session.exec(
        select(Annotation.image_id, Annotation.class_id).where(
            col(Annotation.image_id).in_(image_ids)
        )
    ).all()
    for image_id, class_id in rows:
        classes, n = found[image_id]
        if class_id is not None and class_id not in classes:
            classes.append(class_id)
        found[image_id] = (classes, n + 1)
    return found


def _read(
    project_id: int,
    image: Image,
    classes: list[int],
    count: int,
    values: dict[str, float] | None = None,
) -> ImageRead:
    assert image.id is not None
    file_url, thumb_url = _urls(project_id, image)
    return ImageRead(
        id=image.id,
        original_name=image.original_name,
        width=image.width,
        height=image.height,
        channels=image.channels,
        format=image.format,
        bytes=image.bytes,
        sha256=image.sha256,
        phash=image.phash,
        attributes=image.attributes,
        created_at=image.created_at,
        class_ids=classes,
        annotation_count=count,
        file_url=file_url,
        thumbnail_url=thumb_url,
        values=values or {},
    )


def list_images(*, session: Session, project_id: int, query: ImageQuery) -> ImagePage:
    """One page of the project's images, the total matching the filters and cursors to the
    pages on either side. `query.cursor` (from an earlier answer) replaces `query.page`; a
    cursor page reuses the first page's total instead of counting again. Page numbers read
    the total, and deep pages their start, from app.services.browse_cache when it has them."""
    project = get_project(session=session, project_id=project_id)
    cursor = paging.decode(query.cursor, query) if query.cursor else None
    # The data version is read before anything the cache may keep is computed.
    key = None if cursor else browse_cache.key(session, project, query)
    cached = browse_cache.get(key) if key else None
    filters = _filtered(session, project_id, query)
    size = query.page_size
    page = cursor.page if cursor else query.page
    counted: tuple[list[int], int] | None = None
    if cursor is None and cached is None and filters.bound is not None:
        # Few candidates: one query sorts them all and counts them (the name index is read
        # once per request, not once for the total and again for the page).
        counted = paging.page_counted(session, filters.where(), query.sort, page, size)
        if counted[1] < 0:  # a page past the end has no row to carry the count
            counted = ([], 0 if page == 1 else _count(session, filters))
    known = cursor.total if cursor else cached.total if cached else counted[1] if counted else None
    total = _count(session, filters) if known is None else known
    if key:
        browse_cache.keep_total(key, total)
    pages = max(1, -(-total // size))
    # How many pages an index walk steps over: none from a cursor, else from the nearer end.
    depth = 1 if cursor else max(1, min(page, pages - page + 1))
    anchor = None
    # Without a filter OFFSET skips along the sort's covering index (2 ms for 50k rows at
    # 100k), far less than building anchors (~0.8 µs per row): only the total is cached.
    narrowed = bool(filters.members) or len(filters.clauses) > 1
    if key and narrowed and counted is None and depth > browse_cache.NEAR_END and page <= pages:
        # Deep page numbers: the previous page's last row, from the version's anchors (built
        # on a miss by one pass over every match: walk the sort index or sort them all).
        def everything() -> Any:
            walk = bool(filters.members) and _walk(session, project_id, total, total)
            return filters.where(walk=walk)

        anchor = browse_cache.anchor(session, key, everything, query.sort, page, size, total)
        depth = 1 if anchor else depth
    walk = bool(filters.members) and _walk(session, project_id, depth * size, total)
    where = filters.where(walk=walk)
    if anchor is not None:
        where = and_(where, paging.beyond(query.sort, *anchor))
        ids = paging.page_ids(session, where, query.sort, reverse=False, offset=0, size=size)
        has_next, has_prev = page < pages, page > 1
    elif cursor is not None:
        # One row more than a page says whether the list goes on in that direction.
        where = and_(
            where, paging.beyond(query.sort, cursor.value, cursor.image_id, forward=cursor.forward)
        )
        found = paging.page_ids(
            session, where, query.sort, reverse=not cursor.forward, offset=0, size=size + 1
        )
        more = len(found) > size
        ids = (found[:size] if cursor.forward else found[-size:]) if more else found
        has_next = more if cursor.forward else True
        has_prev = more if not cursor.forward else page > 1
    elif counted is not None:
        ids = counted[0]
        has_next, has_prev = page < pages, page > 1
    elif (page - 1) * size > total // 2:
        # Deep pages count from the end: the last page costs what the first does.
        skip = max(0, total - page * size)
        count = min(size, total - (page - 1) * size)
        ids = paging.page_ids(
            session, where, query.sort, reverse=True, offset=skip, size=max(0, count)
        )
        has_next, has_prev = page < pages, page > 1
    else:
        offset = (page - 1) * size
        ids = paging.page_ids(session, where, query.sort, reverse=False, offset=offset, size=size)
        has_next, has_prev = page < pages, page > 1
    rows = {i.id: i for i in session.exec(select(Image).where(col(Image.id).in_(ids))).all()}
    images = [rows[i] for i in ids if i in rows]
    page_ids = [i.id for i in images if i.id is not None]
    extra = _class_ids(session, page_ids)
    values = targets.image_values(session, page_ids)
    items = [
        _read(project_id, i, *extra[i.id], values.get(i.id)) for i in images if i.id is not None
    ]

    def cursor_from(image: Image, to: int, forward: bool) -> str:
        return paging.cursor_at(image, query, page=to, forward=forward, total=total)

    return ImagePage(
        items=items,
        total=total,
        page=page,
        page_size=size,
        next_cursor=cursor_from(images[-1], page + 1, True) if images and has_next else None,
        prev_cursor=cursor_from(images[0], page - 1, False) if images and has_prev else None,
        search=name_search.search_mode(session),
    )


def neighbours(
    *, session: Session, project_id: int, image_id: int, query: ImageQuery
) -> ImageNeighbours:
    """The images before and after this one in the grid's filters and sort, and its position
    (keyset lookups on the sort's index, as cheap deep in a large project as at its start)."""
    image = get_image(session=session, project_id=project_id, image_id=image_id)
    filters = _filtered(session, project_id, query)
    value = paging.sort_value(image, query.sort)
    matches = session.exec(
        select(func.count()).select_from(Image).where(filters.where(), col(Image.id) == image_id)
    ).one()
    if not matches:
        return ImageNeighbours(image_id=image_id, in_filter=False)

    def step(forward: bool) -> int | None:
        found = session.exec(
            select(Image.id)
            .where(filters.where(), paging.beyond(query.sort, value, image_id, forward=forward))
            .order_by(*paging.order(query.sort, reverse=not forward))
            .limit(1)
        ).first()
        return int(found) if found is not None else None

    before = session.exec(
        select(func.count())
        .select_from(Image)
        .where(filters.where(), paging.beyond(query.sort, value, image_id, forward=False))
    ).one()
    return ImageNeighbours(
        image_id=image_id,
        in_filter=True,
        previous=step(False),
        next=step(True),
        position=int(before) + 1,
        total=_count(session, filters),
    )


def get_image(*, session: Session, project_id: int, image_id: int) -> Image:
    image = session.get(Image, image_id)
    if image is None or image.project_id != project_id:
        raise not_found("image", image_id)
    return image


def annotations_of(
    *, session: Session, project_id: int, image_ids: list[int]
) -> dict[int, list[AnnotationRead]]:
    """Every annotation of these images with its class name and colour (one query), for the
    image view and the grid's overlays."""
    found: dict[int, list[AnnotationRead]] = {}
    if not image_ids:
        return found
    rows = session.exec(
        select(Annotation, LabelClass)
        .join(LabelClass, col(Annotation.class_id) == col(LabelClass.id), isouter=True)
        .where(col(Annotation.image_id).in_(image_ids), Annotation.project_id == project_id)
        .order_by(col(Annotation.image_id), col(Annotation.id))
    ).all()
    for annotation, label_class in rows:
        assert annotation.id is not None
        base = f"/api/projects/{project_id}/images/{annotation.image_id}/annotations"
        found.setdefault(annotation.image_id, []).append(
            AnnotationRead(
                id=annotation.id,
                kind=annotation.kind,
                class_id=annotation.class_id,
                class_name=label_class.name if label_class else None,
                color=label_class.color if label_class else None,
                geometry=annotation.geometry,
                attributes=annotation.attributes,
                overlay_url=f"{base}/{annotation.id}/overlay"
                if annotation.kind == "mask"
                else None,
            )
        )
    return found


def get_image_detail(*, session: Session, project_id: int, image_id: int) -> ImageDetail:
    """Metadata, every annotation with its class name and color, and split memberships."""
    get_project(session=session, project_id=project_id)
    image = get_image(session=session, project_id=project_id, image_id=image_id)
    annotations = annotations_of(session=session, project_id=project_id, image_ids=[image_id]).get(
        image_id, []
    )
    members = session.exec(
        select(SplitMember.split_id, SplitMember.subset).where(
            col(SplitMember.image_id) == image_id
        )
    ).all()
    classes = []
    for a in annotations:
        if a.class_id is not None and a.class_id not in classes:
            classes.append(a.class_id)
    assert image.id is not None
    values = targets.image_values(session, [image.id]).get(image.id)
    read = _read(project_id, image, classes, len(annotations), values)
    return ImageDetail(
        **read.model_dump(),
        annotations=annotations,
        subsets={str(split_id): subset for split_id, subset in members},
    )


def split_choices(*, session: Session, project_id: int) -> list[tuple[int, str]]:
    """(id, name) of the project's splits, newest first, for the grid's split filter."""
    rows = session.exec(
        select(Split.id, Split.name)
        .where(col(Split.project_id) == project_id)
        .order_by(col(Split.id).desc())
    ).all()
    return [(int(i), str(n)) for i, n in rows if i is not None]


__all__ = ["get_image", "get_image_detail", "list_images", "neighbours", "split_choices"]
