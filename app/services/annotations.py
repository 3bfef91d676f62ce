"""The one annotation reader: the images of split subsets with every annotation they carry.

Training, evaluation and export read their samples here, for any task; each task's code half
turns the annotations into its own targets. Mask geometry gets `file`, the PNG's absolute
path, resolved through Storage (the only code that builds paths).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.models import Annotation, Image, LabelClass, SplitMember
from app.storage import Storage

CHUNK = 500


def project_classes(session: Session, project_id: int) -> list[str]:
    """Class names in output order (LabelClass.index, then id)."""
    rows = session.exec(
        select(LabelClass.name)
        .where(LabelClass.project_id == project_id)
        .order_by(col(LabelClass.index), col(LabelClass.id))
    ).all()
    return list(rows)


def subset_samples(
    session: Session,
    storage: Storage,
    *,
    split_id: int,
    subsets: Iterable[str],
    fold: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """[{"image_id", "path", "subset", "width", "height", "annotations": [{"kind",
    "class_name", "geometry", "attributes"}]}] ordered by the subsets as given, then image id.
    `limit` caps the images per subset (export parity reads a few hundred)."""
    wanted = list(dict.fromkeys(subsets))
    rows: list[tuple[str, int, str, int, int]] = []
    for subset in wanted:
        # Five columns: sqlalchemy's select (sqlmodel's typed overloads stop at four).
        query = (
            sa_select(
                col(SplitMember.subset),
                col(Image.id),
                col(Image.stored_path),
                col(Image.width),
                col(Image.height),
            )
            .join(Image, col(Image.id) == col(SplitMember.image_id))
            .where(col(SplitMember.split_id) == split_id, col(SplitMember.subset) == subset)
            .order_by(col(Image.id))
        )
        if fold is not None:
            query = query.where(col(SplitMember.fold) == fold)
        if limit is not None:
            query = query.limit(limit)
        rows.extend((s, int(i or 0), p, w, h) for s, i, p, w, h in session.execute(query).all())
    annotations: dict[int, list[dict[str, Any]]] = {}
    ids = sorted({image_id for _, image_id, _, _, _ in rows})
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for image_id, kind, geometry, attributes, name in session.execute(
            sa_select(
                col(Annotation.image_id),
                col(Annotation.kind),
                col(Annotation.geometry),
                col(Annotation.attributes),
                col(LabelClass.name),
            )
            .join(LabelClass, col(LabelClass.id) == col(Annotation.class_id), isouter=True)
            .where(col(Annotation.image_id).in_(chunk))
            .order_by(col(Annotation.id))
        ).all():
            geometry = dict(geometry or {})
            if kind == "mask" and geometry.get("path"):
                geometry["file"] = str(storage.resolve(str(geometry["path"])))
            annotations.setdefault(image_id, []).append(
                {
                    "kind": kind,
                    "class_name": name,
                    "geometry": geometry,
                    "attributes": dict(attributes or {}),
                }
            )
    return [
        {
            "image_id": image_id,
            "path": str(storage.resolve(stored_path)),
            "subset": subset,
            "width": width,
            "height": height,
            "annotations": annotations.get(image_id, []),
        }
        for subset, image_id, stored_path, width, height in rows
    ]
