"""Project pages: the list (create, rename, delete) and a project's overview."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.models import ProjectCreate, ProjectUpdate
from app.services import jobs as job_service
from app.services import projects as service
from app.storage import Storage
from app.templating import render
from app.web.common import is_htmx, nav_context, parse_form

router = APIRouter()


def _list_partial(request: Request, session: Session, status_code: int = 200) -> Response:
    projects, total = service.list_projects(session=session, page=1, page_size=500)
    return render(
        request,
        "partials/_project_list.html",
        status_code=status_code,
        projects=projects,
        total=total,
    )


@router.get("/")
def projects_page(request: Request, session: Session = Depends(get_session)) -> Response:
    projects, total = service.list_projects(session=session, page=1, page_size=500)
    return render(
        request,
        "pages/projects/list.html",
        projects=projects,
        total=total,
        **nav_context(None, "projects"),
    )


@router.get("/projects/list")
def project_list(request: Request, session: Session = Depends(get_session)) -> Response:
    return _list_partial(request, session)


@router.post("/projects")
def create_project(
    request: Request,
    name: str = Form(""),
    task_type: str = Form(""),
    description: str = Form(""),
    session: Session = Depends(get_session),
) -> Response:
    data = parse_form(
        ProjectCreate, {"name": name, "task_type": task_type, "description": description}
    )
    project = service.create_project(session=session, data=data)
    if not is_htmx(request):
        return RedirectResponse(f"/projects/{project.id}", status_code=303)
    # A new project is opened at once: its page says what to do first (import data).
    return Response(status_code=204, headers={"HX-Redirect": f"/projects/{project.id}"})


@router.patch("/projects/{project_id}")
def update_project(
    request: Request,
    project_id: int,
    name: str | None = Form(None),
    description: str | None = Form(None),
    session: Session = Depends(get_session),
) -> Response:
    data = parse_form(ProjectUpdate, {"name": name, "description": description})
    project = service.update_project(session=session, project_id=project_id, data=data)
    read = service.read_project(session=session, project=project)
    template = request.headers.get("x-partial", "card")
    name_ = (
        "partials/_project_header.html" if template == "header" else "partials/_project_card.html"
    )
    return render(request, name_, p=read, **nav_context(read, "overview"))


@router.delete("/projects/{project_id}")
def delete_project(
    request: Request,
    project_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    service.delete_project(session=session, storage=storage, project_id=project_id)
    if request.headers.get("x-partial") == "redirect":
        return Response(status_code=204, headers={"HX-Redirect": "/"})
    return _list_partial(request, session)


@router.get("/projects/{project_id}")
def project_page(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    project = service.get_project(session=session, project_id=project_id)
    read = service.read_project(session=session, project=project)
    jobs, _ = job_service.list_jobs(session, project_id=project_id, page_size=10)
    return render(
        request,
        "pages/projects/overview.html",
        p=read,
        jobs=jobs,
        **nav_context(read, "overview"),
    )
