"""The import dialog: source form, analyze (dry run), start → live job card → report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session
from starlette.datastructures import UploadFile

from app.config import Settings
from app.deps import get_session, get_settings, get_storage
from app.errors import BadRequest
from app.services import imports as service
from app.services import projects as project_service
from app.storage import Storage
from app.tasks import get_task
from app.templating import render

router = APIRouter()


async def _form(request: Request) -> service.ImportSource:
    form = await request.form(max_files=1, max_fields=10)
    source = str(form.get("source") or "upload")
    fmt = str(form.get("format") or "") or None
    upload = form.get("file")
    path = str(form.get("path") or "").strip()
    nested = service.form_flag("taxonomy_from_folders", form.get("taxonomy_from_folders"))
    if source == "upload":
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise BadRequest("Choose a .zip file to upload.", code="file_missing")
        return service.ImportSource(
            stream=upload.file, filename=upload.filename, fmt=fmt, taxonomy_from_folders=nested
        )
    if not path:
        raise BadRequest("Enter a server folder below an import root.", code="bad_path")
    return service.ImportSource(
        folder=service.FolderImport(path=path, format=fmt, taxonomy_from_folders=nested)
    )


@router.get("/projects/{project_id}/imports/dialog")
def import_form(
    request: Request,
    project_id: int,
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> Response:
    project = project_service.get_project(session=session, project_id=project_id)
    return render(
        request,
        "partials/_import_form.html",
        project=project,
        formats=service.formats_for(project.task_type),
        import_roots=[str(r) for r in settings.import_roots],
        samples=service.samples_for(project.task_type),
        import_help=get_task(project.task_type).import_help,
    )


@router.post("/projects/{project_id}/imports/analyze")
async def analyze(
    request: Request,
    project_id: int,
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
    storage: Storage = Depends(get_storage),
) -> Response:
    analysis = await run_in_threadpool(
        service.analyze_source,
        session,
        settings=settings,
        storage=storage,
        project_id=project_id,
        source=await _form(request),
    )
    return render(request, "partials/_import_analysis.html", analysis=analysis)


def _started(request: Request, job: Any, row: Any) -> Response:
    return render(request, "partials/_import_started.html", job=job, imp=row)


@router.post("/projects/{project_id}/imports")
async def start(
    request: Request,
    project_id: int,
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
    storage: Storage = Depends(get_storage),
) -> Response:
    job, row = await run_in_threadpool(
        service.start_import,
        session,
        settings=settings,
        storage=storage,
        project_id=project_id,
        source=await _form(request),
    )
    return _started(request, job, row)


@router.post("/projects/{project_id}/samples/{sample}")
def start_sample(
    request: Request, project_id: int, sample: str, session: Session = Depends(get_session)
) -> Response:
    job, row = service.start_sample_import(session, project_id=project_id, sample=sample)
    return _started(request, job, row)


@router.get("/projects/{project_id}/imports/{import_id}/report")
def report(
    request: Request,
    project_id: int,
    import_id: int,
    started: bool = False,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """While the import runs, a placeholder that polls; then the report. Below the job card
    that started it (`started`), the report leaves the import's message to that card, so the
    message is shown once."""
    row = service.get_import(session, project_id=project_id, import_id=import_id, storage=storage)
    response = render(request, "partials/_import_report.html", imp=row, started=started)
    if row.status == "succeeded":
        # The dataset page's grid, counts, classes and statistics listen for this.
        response.headers["HX-Trigger"] = "dataset-imported"
    return response
