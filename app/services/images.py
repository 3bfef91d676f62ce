"""Images: the filtered, sorted list behind the dataset grid, details with annotations, and the
original file, thumbnail and mask-overlay bytes with their cache validators."""

from __future__ import annotations

import hashlib
import io
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError
from sqlalchemy import and_, distinct, exists, func, literal
from sqlmodel import Session, col, select

from app.errors import Invalid, NotFound, not_found
from app.models import Annotation, Image, LabelClass, Split, SplitMember
from app.models.browse import SUBSETS, AnnotationRead, ImageDetail, ImageQuery, ImageRead
from app.services.projects import get_project
from app.storage import Storage, atomic_write_bytes

THUMB_SIDE = 256
MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "JPG": "image/jpeg",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
}
BACKGROUND_NAMES = {"background", "_background_", "bg", "__background__"}


@dataclass(frozen=True)
class FileAnswer:
    """A file to send and the validators that let a browser keep it (304 on If-None-Match)."""

    path: Path
    media_type: str
    etag: str


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
        clauses.append(col(Image.attributes)[key].as_string() == value)
    if query.q:
        escaped = query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        name = col(Image.original_name)
        # SQLite's LIKE already ignores ASCII case; lower() would only cost time there.
        sqlite = session.get_bind().dialect.name == "sqlite"
        clauses.append(name.like(pattern, "\\") if sqlite else name.ilike(pattern, "\\"))
    return _Filters(clauses=clauses, members=members)


def _count(session: Session, filters: _Filters) -> int:
    if len(filters.clauses) == 1 and len(filters.members) == 1:
        # Only a class or a split subset: count its ids on their own index.
        ids = filters.members[0].subquery()
        return int(session.exec(select(func.count(distinct(ids.c.image_id)))).one())
    return int(session.exec(select(func.count()).select_from(Image).where(filters.where())).one())


def _walk(session: Session, project_id: int, query: ImageQuery, total: int) -> bool:
    """Whether walking the sort index beats sorting all matches, for an id-set filter.

    Walking visits about (offset + limit) * N / M rows for M matches of N images; sorting
    loads and orders all M. The id range stands in for N (imports make contiguous ids).
    """
    if not total or query.sort.lstrip("-") == "class":
        return False
    # Two queries: SQLite answers a lone min() or max() from the index, both together by a scan.
    in_project = col(Image.project_id) == project_id
    low = session.exec(select(func.min(Image.id)).where(in_project)).one()
    high = session.exec(select(func.max(Image.id)).where(in_project)).one()
    if low is None or high is None:
        return False
    images = high - low + 1
    return query.page * query.page_size * images <= 4 * total * total


def _order(sort: str) -> list[Any]:
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    if key == "class":
        # The image's first class in taxonomy order; unlabelled images sort last.
        column: Any = (
            select(func.min(col(LabelClass.index)))
            .join(Annotation, col(Annotation.class_id) == col(LabelClass.id))
            .where(col(Annotation.image_id) == col(Image.id))
            .correlate(Image)
            .scalar_subquery()
        )
        nulls = func.coalesce(column, literal(2**31 - 1))
        return [nulls.desc() if descending else nulls, col(Image.id)]
    column = {"name": Image.original_name, "date": Image.created_at, "size": Image.bytes}[key]
    direction = col(column).desc() if descending else col(column).asc()
    tie = col(Image.id).desc() if descending else col(Image.id).asc()
    return [direction, tie]


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


def _read(project_id: int, image: Image, classes: list[int], count: int) -> ImageRead:
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
    )


def list_images(
    *, session: Session, project_id: int, query: ImageQuery
) -> tuple[list[ImageRead], int]:
    """One page of the project's images and the total matching the filters."""
    get_project(session=session, project_id=project_id)
    filters = _filtered(session, project_id, query)
    total = _count(session, filters)
    walk = bool(filters.members) and _walk(session, project_id, query, total)
    where = filters.where(walk=walk)
    # Deferred join: page through ids on an index (cheap to skip for deep pages), then load
    # only the rows of the page.
    ids = list(
        session.exec(
            select(Image.id)
            .where(where)
            .order_by(*_order(query.sort))
            .offset((query.page - 1) * query.page_size)
            .limit(query.page_size)
        ).all()
    )
    rows = {i.id: i for i in session.exec(select(Image).where(col(Image.id).in_(ids))).all()}
    images = [rows[i] for i in ids if i in rows]
    extra = _class_ids(session, [i.id for i in images if i.id is not None])
    return [_read(project_id, i, *extra[i.id]) for i in images if i.id is not None], total


def get_image(*, session: Session, project_id: int, image_id: int) -> Image:
    image = session.get(Image, image_id)
    if image is None or image.project_id != project_id:
        raise not_found("image", image_id)
    return image


def get_image_detail(*, session: Session, project_id: int, image_id: int) -> ImageDetail:
    """Metadata, every annotation with its class name and color, and split memberships."""
    get_project(session=session, project_id=project_id)
    image = get_image(session=session, project_id=project_id, image_id=image_id)
    rows = session.exec(
        select(Annotation, LabelClass)
        .join(LabelClass, col(Annotation.class_id) == col(LabelClass.id), isouter=True)
        .where(col(Annotation.image_id) == image_id)
        .order_by(col(Annotation.id))
    ).all()
    annotations = []
    base = f"/api/projects/{project_id}/images/{image_id}/annotations"
    for annotation, label_class in rows:
        assert annotation.id is not None
        annotations.append(
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
    members = session.exec(
        select(SplitMember.split_id, SplitMember.subset).where(
            col(SplitMember.image_id) == image_id
        )
    ).all()
    classes = []
    for a in annotations:
        if a.class_id is not None and a.class_id not in classes:
            classes.append(a.class_id)
    read = _read(project_id, image, classes, len(annotations))
    return ImageDetail(
        **read.model_dump(),
        annotations=annotations,
        subsets={str(split_id): subset for split_id, subset in members},
    )


def _existing(storage: Storage, relative: str, what: str) -> Path:
    path = storage.resolve(relative)
    if not path.is_file():
        raise NotFound(
            f"The {what} file is missing from the workspace; re-import the image.",
            code=f"{what}_file_missing",
        )
    return path


def image_file(*, session: Session, storage: Storage, project_id: int, image_id: int) -> FileAnswer:
    image = get_image(session=session, project_id=project_id, image_id=image_id)
    path = _existing(storage, image.stored_path, "image")
    media_type = MEDIA_TYPES.get(image.format.upper()) or (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    return FileAnswer(path=path, media_type=media_type, etag=f'"{image.sha256}"')


def _make_thumbnail(source: Path) -> tuple[bytes, str]:
    """A thumbnail of at most THUMB_SIDE px, EXIF orientation applied: JPEG, or PNG with alpha."""
    try:
        with PILImage.open(source) as opened:
            opened.draft("RGB", (THUMB_SIDE, THUMB_SIDE))
            picture = ImageOps.exif_transpose(opened)
            picture.thumbnail((THUMB_SIDE, THUMB_SIDE))
            alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            buffer = io.BytesIO()
            if alpha:
                picture.convert("RGBA").save(buffer, format="PNG", optimize=True)
                return buffer.getvalue(), ".png"
            if picture.mode not in ("RGB", "L"):
                picture = _to_8bit(picture)
            picture.save(buffer, format="JPEG", quality=85)
            return buffer.getvalue(), ".jpg"
    except (OSError, UnidentifiedImageError, ValueError, PILImage.DecompressionBombError) as exc:
        raise Invalid(
            f"The stored image cannot be decoded ({exc}); re-import it.", code="image_unreadable"
        ) from None


def _to_8bit(picture: PILImage.Image) -> PILImage.Image:
    if picture.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(picture, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low or 1.0) * 255.0
        return PILImage.fromarray(scaled.astype(np.uint8))
    return picture.convert("RGB")


def image_thumbnail(
    *, session: Session, storage: Storage, project_id: int, image_id: int
) -> FileAnswer:
    """The stored thumbnail; made on the fly (and kept) when the row has none or it is gone."""
    image = get_image(session=session, project_id=project_id, image_id=image_id)
    etag = f'"t{THUMB_SIDE}-{image.sha256}"'
    if image.thumb_path:
        path = storage.resolve(image.thumb_path)
        if path.is_file():
            media_type = mimetypes.guess_type(path.name)[0] or "image/jpeg"
            return FileAnswer(path=path, media_type=media_type, etag=etag)
    source = _existing(storage, image.stored_path, "image")
    data, suffix = _make_thumbnail(source)
    target = storage.thumbs_dir(project_id) / storage.new_name(suffix)
    atomic_write_bytes(target, data)
    image.thumb_path = storage.relative(target)
    session.add(image)
    session.commit()
    return FileAnswer(path=target, media_type=mimetypes.guess_type(target.name)[0] or "", etag=etag)


def _hex_rgb(color: str) -> tuple[int, int, int]:
    try:
        return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
    except ValueError:
        return 136, 136, 136


def _load_mask(
    session: Session, storage: Storage, project_id: int, image_id: int, annotation_id: int
) -> tuple[Annotation, np.ndarray]:
    image = get_image(session=session, project_id=project_id, image_id=image_id)
    annotation = session.get(Annotation, annotation_id)
    if annotation is None or annotation.image_id != image.id or annotation.kind != "mask":
        raise not_found("annotation", annotation_id)
    path = _existing(storage, str(annotation.geometry.get("path", "")), "mask")
    try:
        with PILImage.open(path) as opened:
            values = np.asarray(opened)
    except (OSError, UnidentifiedImageError, ValueError, PILImage.DecompressionBombError):
        raise Invalid(
            "The mask file cannot be decoded; re-import it.", code="mask_unreadable"
        ) from None
    if values.ndim == 3:
        values = values[..., 0]
    return annotation, values.astype(np.int64)


def mask_class_ids(
    *, session: Session, storage: Storage, project_id: int, image_id: int, annotation_id: int
) -> list[int]:
    """The classes a mask paints (its own class for a binary mask), for the viewer's toggles."""
    annotation, values = _load_mask(session, storage, project_id, image_id, annotation_id)
    present = {int(v) for v in np.unique(values).tolist()} - {255}
    if annotation.class_id is not None and present <= {0, 1}:
        return [annotation.class_id]
    classes = session.exec(
        select(LabelClass)
        .where(LabelClass.project_id == project_id, col(LabelClass.index).in_(sorted(present)))
        .order_by(col(LabelClass.index))
    ).all()
    return [c.id for c in classes if c.id is not None]


def mask_overlay(
    *,
    session: Session,
    storage: Storage,
    project_id: int,
    image_id: int,
    annotation_id: int,
    hide: set[int] | None = None,
) -> tuple[bytes, str]:
    """An RGBA PNG of a mask: class index -> class color, ignore (255) and hidden classes clear.

    Background classes (named like "background") are hidden unless asked for, since painting
    them would cover the whole image. Returns the PNG bytes and an ETag.
    """
    annotation, values = _load_mask(session, storage, project_id, image_id, annotation_id)
    classes = session.exec(select(LabelClass).where(LabelClass.project_id == project_id)).all()
    hidden = hide if hide is not None else {c.id for c in classes if _is_background(c)}
    # A mask that belongs to one class and holds 0/1 (or 0/255-free binary) paints that class.
    by_index = {c.index: c for c in classes}
    own = session.get(LabelClass, annotation.class_id) if annotation.class_id else None
    binary = own is not None and set(np.unique(values).tolist()) <= {0, 1, 255}
    lut = np.zeros((max(int(values.max(initial=0)), 255) + 1, 4), dtype=np.uint8)
    if binary:
        assert own is not None
        if own.id not in hidden:
            lut[1] = (*_hex_rgb(own.color), 255)
    else:
        for index in np.unique(values).tolist():
            if index == 255:
                continue
            label_class = by_index.get(int(index))
            if label_class is None:
                lut[index] = (136, 136, 136, 255)
            elif label_class.id not in hidden:
                lut[index] = (*_hex_rgb(label_class.color), 255)
    rgba = lut[np.clip(values, 0, lut.shape[0] - 1)]
    buffer = io.BytesIO()
    PILImage.fromarray(rgba).save(buffer, format="PNG")
    data = buffer.getvalue()
    return data, f'"{hashlib.sha256(data).hexdigest()[:32]}"'


def _is_background(label_class: LabelClass) -> bool:
    return is_background_name(label_class.name)


def is_background_name(name: str) -> bool:
    """Classes named like "background" start hidden: painting them would hide the image."""
    return name.strip().casefold() in BACKGROUND_NAMES


def split_choices(*, session: Session, project_id: int) -> list[tuple[int, str]]:
    """(id, name) of the project's splits, newest first, for the grid's split filter."""
    rows = session.exec(
        select(Split.id, Split.name)
        .where(col(Split.project_id) == project_id)
        .order_by(col(Split.id).desc())
    ).all()
    return [(int(i), str(n)) for i, n in rows if i is not None]


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match header against our ETag."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


__all__ = [
    "FileAnswer",
    "etag_matches",
    "get_image",
    "get_image_detail",
    "image_file",
    "image_thumbnail",
    "is_background_name",
    "list_images",
    "mask_class_ids",
    "mask_overlay",
    "split_choices",
]
