"""What a split stratifies on, per image: the task's tokens (TaskSpec.stratify: quantile bins
of a regression target...) or, by default, the classes the image shows; and the assignment
that keeps some tokens out of train (TaskSpec.kept_out_of_train: anomalous images go to val
and test only).

Separate from app/services/splits.py, which plans and stores splits; both the planner and the
saved-split summaries read the tokens from here, so a preview and the saved split agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.errors import Invalid
from app.models import Annotation, LabelClass
from app.services.split_strategies import Unit, iterative_stratification
from app.tasks import get_task
from app.tasks.registry import AnnotationRow


def annotation_rows(
    session: Session, project_id: int, image_ids: Sequence[int] | None = None
) -> list[AnnotationRow]:
    """Every annotation of the project (or of these images) as the task hooks see it."""
    # Five columns: sqlalchemy's select (sqlmodel's typed overloads stop at four).
    query = (
        sa_select(
            col(Annotation.image_id),
            col(Annotation.kind),
            col(LabelClass.name),
            col(Annotation.geometry),
            col(Annotation.attributes),
        )
        .join(LabelClass, col(LabelClass.id) == col(Annotation.class_id), isouter=True)
        .where(col(Annotation.project_id) == project_id)
        .order_by(col(Annotation.id))
    )
    rows: list[AnnotationRow] = []
    ids = list(image_ids) if image_ids is not None else None
    chunks = [ids[i : i + 500] for i in range(0, len(ids), 500)] if ids is not None else [None]
    for chunk in chunks:
        scoped = query if chunk is None else query.where(col(Annotation.image_id).in_(chunk))
        for image_id, kind, name, geometry, attributes in session.execute(scoped).all():
            rows.append(AnnotationRow(image_id, kind, name, geometry or {}, attributes or {}))
    return rows


def image_tokens(session: Session, project_id: int, task: str) -> dict[int, set[str]]:
    """Each image's stratification tokens (images without any are left out)."""
    spec = get_task(task)
    if spec.stratify is not None:
        return spec.stratify(annotation_rows(session, project_id))
    tokens: dict[int, set[str]] = {}
    for image_id, name in session.exec(
        select(Annotation.image_id, LabelClass.name)
        .join(LabelClass, col(LabelClass.id) == col(Annotation.class_id))
        .where(col(Annotation.project_id) == project_id)
        .distinct()
    ).all():
        tokens.setdefault(image_id, set()).add(name)
    return tokens


def kept_out(task: str, requested: list[str] | None) -> set[str]:
    """The tokens a split keeps out of train: as requested, else the task's default."""
    return set(get_task(task).kept_out_of_train if requested is None else requested)


def held_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """The ratios for images kept out of train: val and test in proportion (val alone, or
    test alone, when only one of them has a share)."""
    rest = {name: r for name, r in ratios.items() if name != "train" and r > 0}
    if not rest:
        raise Invalid(
            "Some images must stay out of train (keep_out_of_train) but the ratios give val "
            "and test nothing; give val or test a share, or pass keep_out_of_train=[].",
            code="nowhere_to_keep_out",
        )
    total = sum(rest.values())
    return {name: r / total for name, r in rest.items()}


def stratify_keeping_out(
    units: Sequence[Unit], ratios: Mapping[str, float], seed: int, held: set[str]
) -> list[str]:
    """Iterative stratification where units showing a `held` token never go to train: they
    are stratified over val/test, the others over all subsets."""
    restricted = [i for i, unit in enumerate(units) if held & set(unit.labels)]
    if not restricted:
        return iterative_stratification(units, ratios, seed)
    free = [i for i in range(len(units)) if i not in set(restricted)]
    out = [""] * len(units)
    for picked, wanted in ((free, dict(ratios)), (restricted, held_ratios(ratios))):
        if not picked:
            continue
        assigned = iterative_stratification([units[i] for i in picked], wanted, seed)
        for i, subset in zip(picked, assigned, strict=True):
            out[i] = subset
    return out


def expected_shares(
    units: Sequence[Unit], ratios: Mapping[str, float], held: set[str]
) -> dict[str, float]:
    """The subset shares a split keeping `held` out of train should reach (for its warnings)."""
    sizes = [unit.size for unit in units]
    total = sum(sizes) or 1
    kept = sum(size for unit, size in zip(units, sizes, strict=True) if held & set(unit.labels))
    if not kept:
        return dict(ratios)
    shares = held_ratios(ratios)
    return {
        name: (r * (total - kept) + shares.get(name, 0.0) * kept) / total
        for name, r in ratios.items()
    }


def subset_annotation_rows(
    session: Session, project_id: int, split_id: int, subsets: Sequence[str]
) -> dict[str, list[AnnotationRow]]:
    """The annotations of a split's subsets (every fold's members for k-fold splits), for a
    task's check before training."""
    from app.models import SplitMember

    out: dict[str, list[AnnotationRow]] = {}
    for subset in subsets:
        ids = sorted(
            set(
                session.exec(
                    select(SplitMember.image_id).where(
                        SplitMember.split_id == split_id, SplitMember.subset == subset
                    )
                ).all()
            )
        )
        out[subset] = annotation_rows(session, project_id, ids) if ids else []
    return out
