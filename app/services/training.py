"""What a training run reads from the database: classes, multi-label-ness, samples of a subset."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.models import Annotation, Image, LabelClass, SplitMember
from app.storage import Storage


def project_classes(session: Session, project_id: int) -> list[str]:
    """Class names in output order (LabelClass.index, then id)."""
    rows = session.exec(
        select(LabelClass.name)
        .where(LabelClass.project_id == project_id)
        .order_by(col(LabelClass.index), col(LabelClass.id))
    ).all()
    return list(rows)


def has_multi_label_images(session: Session, project_id: int) -> bool:
    """A project trains multi-label when any image carries more than one label annotation."""
    per_image = (
        select(Annotation.image_id)
        .where(Annotation.project_id == project_id, Annotation.kind == "label")
        .group_by(col(Annotation.image_id))
        .having(func.count(col(Annotation.id)) > 1)
        .limit(1)
    )
    return session.exec(per_image).first() is not None


def subset_image_ids(
    session: Session, split_id: int, subset: str, fold: int | None = None
) -> list[int]:
    """Image ids of one subset of a split, ordered by id.

    Stand-in for app.services.splits.subset_image_ids (issue 4); the lead switches it over.
    """
    query = select(SplitMember.image_id).where(
        SplitMember.split_id == split_id, SplitMember.subset == subset
    )
    if fold is not None:
        query = query.where(SplitMember.fold == fold)
    return sorted(session.exec(query).all())


def samples_for(
    session: Session, storage: Storage, split_id: int, subset: str, fold: int | None = None
) -> list[dict[str, Any]]:
    """[{"image_id", "path" (absolute), "labels": [class names]}] for one subset of a split."""
    ids = subset_image_ids(session, split_id, subset, fold)
    if not ids:
        return []
    images = session.exec(select(Image).where(col(Image.id).in_(ids))).all()
    labels: dict[int, list[str]] = {i: [] for i in ids}
    rows = session.exec(
        select(Annotation.image_id, LabelClass.name)
        .join(LabelClass, col(LabelClass.id) == col(Annotation.class_id))
        .where(col(Annotation.image_id).in_(ids), Annotation.kind == "label")
    ).all()
    for image_id, name in rows:
        labels[image_id].append(name)
    by_id = {image.id: image for image in images}
    return [
        {
            "image_id": image_id,
            "path": str(storage.resolve(by_id[image_id].stored_path)),
            "labels": sorted(set(labels[image_id])),
        }
        for image_id in ids
        if image_id in by_id
    ]
