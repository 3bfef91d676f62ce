"""Classes API: list, read, rename, recolor and group under a parent."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlmodel import Session

from app.deps import get_session
from app.models import Page
from app.models.browse import ClassRead, ClassUpdate, TaxonomyRead
from app.services import classes as service

router = APIRouter(tags=["classes"])


@router.get(
    "/projects/{project_id}/classes", response_model=Page[ClassRead], summary="List classes"
)
def list_classes(project_id: int, session: Session = Depends(get_session)) -> Page[ClassRead]:
    """All classes in index order, with image and annotation counts (not paginated)."""
    items = service.list_classes(session=session, project_id=project_id)
    return Page(items=items, total=len(items), page=1, page_size=len(items))


@router.get(
    "/projects/{project_id}/classes/{class_id}", response_model=ClassRead, summary="Get a class"
)
def get_class(project_id: int, class_id: int, session: Session = Depends(get_session)) -> ClassRead:
    label_class = service.get_class(session=session, project_id=project_id, class_id=class_id)
    return service.read_class(session=session, label_class=label_class)


@router.patch(
    "/projects/{project_id}/classes/{class_id}",
    response_model=ClassRead,
    summary="Rename, recolor or regroup a class",
)
def update_class(
    project_id: int, class_id: int, data: ClassUpdate, session: Session = Depends(get_session)
) -> ClassRead:
    """Names are unique per project (409 `class_exists`); colors are #rrggbb; `parent_id` must
    be a class of the same project that is not below this one (`null` removes the parent)."""
    label_class = service.update_class(
        session=session, project_id=project_id, class_id=class_id, data=data
    )
    return service.read_class(session=session, label_class=label_class)


@router.get(
    "/projects/{project_id}/taxonomy", response_model=TaxonomyRead, summary="The class tree"
)
def get_taxonomy(project_id: int, session: Session = Depends(get_session)) -> TaxonomyRead:
    """Top-level classes with their children (`parent_id` links), depth and leaf classes."""
    return service.taxonomy(session=session, project_id=project_id)
