"""Image bytes: the original file, thumbnails (made on demand) and colorized mask overlays,
each with the ETag that lets a browser keep it."""

from __future__ import annotations

import hashlib
import io
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError
from sqlmodel import Session, col, select

from app.errors import Invalid, NotFound, not_found
from app.importers.images import FORMATS
from app.models import Annotation, LabelClass
from app.services.images import get_image
from app.storage import Storage, atomic_write_bytes

if TYPE_CHECKING:
    import numpy as np

THUMB_SIDE = 256
BACKGROUND_NAMES = {"background", "_background_", "bg", "__background__"}


@dataclass(frozen=True)
class FileAnswer:
    """A file to send and the validators that let a browser keep it (304 on If-None-Match)."""

    path: Path
    media_type: str
    etag: str


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
    # The content type comes from the format found when the file was decoded at import,
    # never from its name; responses carry nosniff (app/security.py), so a JPEG/HTML
    # polyglot stays an image.
    media_type = FORMATS.get(image.format.upper(), "application/octet-stream")
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
    import numpy as np

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
    import numpy as np

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
    import numpy as np

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
    import numpy as np

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
    "image_file",
    "image_thumbnail",
    "is_background_name",
    "mask_class_ids",
    "mask_overlay",
]
