"""Classes: list with counts; rename (unique per project), recolor, and group under a parent."""

from __future__ import annotations

from sqlalchemy import distinct, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.errors import Conflict, Invalid, not_found
from app.models import Annotation, LabelClass
from app.models.browse import ClassRead, ClassUpdate, TaxonomyNode, TaxonomyRead
from app.services.projects import get_project


def _counts(session: Session, project_id: int) -> dict[int, tuple[int, int]]:
    rows = session.exec(
        select(
            Annotation.class_id,
            func.count(distinct(col(Annotation.image_id))),
            func.count(),
        )
        .where(col(Annotation.project_id) == project_id, col(Annotation.class_id).is_not(None))
        .group_by(col(Annotation.class_id))
    ).all()
    return {int(cid): (int(images), int(n)) for cid, images, n in rows if cid is not None}


def _read(label_class: LabelClass, counts: dict[int, tuple[int, int]]) -> ClassRead:
    assert label_class.id is not None
    images, annotations = counts.get(label_class.id, (0, 0))
    return ClassRead(
        id=label_class.id,
        name=label_class.name,
        index=label_class.index,
        color=label_class.color,
        parent_id=label_class.parent_id,
        image_count=images,
        annotation_count=annotations,
    )


def list_classes(*, session: Session, project_id: int) -> list[ClassRead]:
    """Every class in index order, with how many images and annotations use it."""
    get_project(session=session, project_id=project_id)
    classes = session.exec(
        select(LabelClass)
        .where(LabelClass.project_id == project_id)
        .order_by(col(LabelClass.index), col(LabelClass.id))
    ).all()
    counts = _counts(session, project_id)
    return [_read(c, counts) for c in classes]


def taxonomy(*, session: Session, project_id: int) -> TaxonomyRead:
    """The classes as a tree (parents from the class panel or an imported taxonomy.csv)."""
    classes = list_classes(session=session, project_id=project_id)
    ids = {c.id for c in classes}
    children: dict[int | None, list[ClassRead]] = {}
    for c in classes:
        children.setdefault(c.parent_id if c.parent_id in ids else None, []).append(c)

    def node(c: ClassRead, seen: frozenset[int]) -> tuple[TaxonomyNode, int]:
        below = [k for k in children.get(c.id, []) if k.id not in seen]  # cycles cannot be
        built = [node(k, seen | {k.id}) for k in below]  # saved, but never loop on one
        tree = TaxonomyNode(
            id=c.id,
            name=c.name,
            color=c.color,
            image_count=c.image_count,
            children=[n for n, _ in built],
        )
        return tree, 1 + max((d for _, d in built), default=0)

    roots = [node(c, frozenset({c.id})) for c in children.get(None, [])]
    parents = {c.parent_id for c in classes}
    return TaxonomyRead(
        items=[n for n, _ in roots],
        depth=max((d for _, d in roots), default=0),
        leaves=[c.name for c in classes if c.id not in parents],
    )


def class_colors(*, session: Session, project_id: int) -> list[str]:
    """Colours in output-index order (what overlays of predictions colour by)."""
    return list(
        session.exec(
            select(LabelClass.color)
            .where(LabelClass.project_id == project_id)
            .order_by(col(LabelClass.index), col(LabelClass.id))
        ).all()
    )


def get_class(*, session: Session, project_id: int, class_id: int) -> LabelClass:
    get_project(session=session, project_id=project_id)
    label_class = session.get(LabelClass, class_id)
    if label_class is None or label_class.project_id != project_id:
        raise not_found("class", class_id)
    return label_class


def read_class(*, session: Session, label_class: LabelClass) -> ClassRead:
    return _read(label_class, _counts(session, label_class.project_id))


def _check_name(session: Session, label_class: LabelClass, name: str) -> None:
    # Case-insensitive, like project names: "Cat" next to "cat" would only confuse.
    others = session.exec(
        select(LabelClass.name).where(
            LabelClass.project_id == label_class.project_id,
            col(LabelClass.id) != label_class.id,
        )
    ).all()
    if any(other.casefold() == name.casefold() for other in others):
        raise Conflict(
            f"A class named {name!r} already exists in this project; choose another name.",
            code="class_exists",
            details={"name": name},
        )


def _check_parent(session: Session, label_class: LabelClass, parent_id: int) -> None:
    parent = session.get(LabelClass, parent_id)
    if parent is None or parent.project_id != label_class.project_id:
        raise Invalid(
            f"parent_id={parent_id} is not a class of this project; use one of its class ids.",
            code="invalid_parent",
        )
    seen: set[int] = set()
    current: LabelClass | None = parent
    while current is not None and current.id is not None and current.id not in seen:
        if current.id == label_class.id:
            raise Invalid(
                f"Class {parent.name!r} cannot be the parent of {label_class.name!r}: the "
                "taxonomy would contain a cycle. Pick a class that is not below it.",
                code="class_parent_cycle",
            )
        seen.add(current.id)
        current = session.get(LabelClass, current.parent_id) if current.parent_id else None


def update_class(
    *, session: Session, project_id: int, class_id: int, data: ClassUpdate
) -> LabelClass:
    """Apply the fields that were sent; `parent_id: null` clears the parent."""
    label_class = get_class(session=session, project_id=project_id, class_id=class_id)
    sent = data.model_fields_set
    if data.name is not None and data.name != label_class.name:
        _check_name(session, label_class, data.name)
        label_class.name = data.name
    if data.color is not None:
        label_class.color = data.color
    if "parent_id" in sent:
        if data.parent_id is not None:
            _check_parent(session, label_class, data.parent_id)
        label_class.parent_id = data.parent_id
    session.add(label_class)
    try:
        session.commit()
    except IntegrityError:  # a concurrent rename took the name
        session.rollback()
        raise Conflict(
            f"A class named {data.name!r} already exists in this project; choose another name.",
            code="class_exists",
        ) from None
    session.refresh(label_class)
    return label_class
