"""Projects API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.models import Page, ProjectCreate, ProjectRead, ProjectUpdate
from app.services import projects as service
from app.storage import Storage

router = APIRouter(tags=["projects"])


@router.get("/projects", response_model=Page[ProjectRead], summary="List projects")
def list_projects(
    page: int = Query(1, ge=1),
    page_size: int = Query(100, ge=1, le=500),
    q: str | None = Query(None, max_length=100, description="Name contains (case-insensitive)"),
    session: Session = Depends(get_session),
) -> Page[ProjectRead]:
    """Newest first, each with counts of images, classes, splits and experiments."""
    items, total = service.list_projects(session=session, page=page, page_size=page_size, q=q)
    return Page(items=items, total=total, page=page, page_size=page_size)


@router.post("/projects", response_model=ProjectRead, status_code=201, summary="Create a project")
def create_project(data: ProjectCreate, session: Session = Depends(get_session)) -> ProjectRead:
    """Name (unique, case-insensitive) and one of the task types from GET /api/tasks."""
    project = service.create_project(session=session, data=data)
    return service.read_project(session=session, project=project)


@router.get("/projects/{project_id}", response_model=ProjectRead, summary="Get a project")
def get_project(project_id: int, session: Session = Depends(get_session)) -> ProjectRead:
    project = service.get_project(session=session, project_id=project_id)
    return service.read_project(session=session, project=project)


@router.patch(
    "/projects/{project_id}", response_model=ProjectRead, summary="Rename or describe a project"
)
def update_project(
    project_id: int, data: ProjectUpdate, session: Session = Depends(get_session)
) -> ProjectRead:
    """The task type is fixed once a project exists; create another project to change it."""
    project = service.update_project(session=session, project_id=project_id, data=data)
    return service.read_project(session=session, project=project)


@router.delete("/projects/{project_id}", status_code=204, summary="Delete a project")
def delete_project(
    project_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """Removes its rows and its workspace folder; 409 while one of its jobs is running."""
    service.delete_project(session=session, storage=storage, project_id=project_id)
    return Response(status_code=204)
