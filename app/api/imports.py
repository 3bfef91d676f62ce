"""Imports API: start an import (zip upload or server folder), analyze first, list, read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlmodel import Session
from starlette.datastructures import UploadFile

from app.api.bodies import body_kind, file_or_path_doc, json_body
from app.config import Settings
from app.deps import get_session, get_settings, get_storage
from app.errors import BadRequest, TooLarge, UnsupportedMedia
from app.models import Page
from app.services import imports as service
from app.services import jobs as job_service
from app.storage import Storage

router = APIRouter(tags=["imports"])

BODY_DOC = file_or_path_doc(
    {"format": {"type": "string"}, "taxonomy_from_folders": {"type": "boolean"}}, []
)


async def _source(request: Request, settings: Settings) -> service.ImportSource:
    """Either a JSON folder request or a multipart zip upload (size-checked up front)."""
    kind = body_kind(request)
    if kind == "application/json":
        folder = await json_body(
            request,
            settings,
            service.FolderImport,
            '{"path": "<folder below an import root>", "format": "<optional>", '
            '"taxonomy_from_folders": false}',
        )
        return service.ImportSource(folder=folder)
    if kind not in {"multipart/form-data", "application/x-www-form-urlencoded"}:
        raise UnsupportedMedia(
            "Send a multipart form with a zip in the `file` field, or JSON with a `path`.",
            code="unsupported_media_type",
        )
    length = int(request.headers.get("content-length") or 0)
    if length > settings.max_upload_bytes + 64 * 1024:
        raise TooLarge(
            f"The upload is larger than the {settings.max_upload_mb} MB limit "
            "(STUDIO_MAX_UPLOAD_MB).",
            code="upload_too_large",
        )
    form = await request.form(max_files=1, max_fields=5)
    upload = form.get("file")
    fmt = form.get("format")
    nested = service.form_flag("taxonomy_from_folders", form.get("taxonomy_from_folders"))
    if not isinstance(upload, UploadFile):
        raise BadRequest("The form needs a zip file in the `file` field.", code="file_missing")
    return service.ImportSource(
        stream=upload.file,
        filename=upload.filename or "upload.zip",
        fmt=fmt if isinstance(fmt, str) and fmt else None,
        taxonomy_from_folders=nested,
    )


@router.post(
    "/projects/{project_id}/imports",
    status_code=202,
    summary="Start an import (zip upload or server folder)",
    openapi_extra=BODY_DOC,
)
async def start_import(
    project_id: int,
    request: Request,
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
    storage: Storage = Depends(get_storage),
) -> JSONResponse:
    """202 with `{"job": {...}, "import": {...}}`; follow GET /api/jobs/{id}. The format is
    detected unless `format` names one (see GET /api/projects/{pid}/imports/formats).
    `taxonomy_from_folders`: class folders nested coarse/fine/... give the fine classes with
    their coarse parents (off: deeper folders are the `folder` attribute)."""
    source = await _source(request, settings)
    job, row = await run_in_threadpool(
        service.start_import,
        session,
        settings=settings,
        storage=storage,
        project_id=project_id,
        source=source,
    )
    return JSONResponse(_started(job, row), status_code=202)


def _started(job: Any, row: Any) -> dict[str, Any]:
    return {
        "job": job_service.read_job(job).model_dump(mode="json"),
        "import": service.read_import(row).model_dump(mode="json"),
    }


@router.post(
    "/projects/{project_id}/imports/analyze",
    response_model=service.Analysis,
    summary="Dry run: what an import would bring in",
    openapi_extra=BODY_DOC,
)
async def analyze_import(
    project_id: int,
    request: Request,
    session: Session = Depends(get_session),
    settings: Settings = Depends(get_settings),
    storage: Storage = Depends(get_storage),
) -> service.Analysis:
    """Same body as starting an import; reads annotation files only and writes nothing."""
    source = await _source(request, settings)
    return await run_in_threadpool(
        service.analyze_source,
        session,
        settings=settings,
        storage=storage,
        project_id=project_id,
        source=source,
    )


@router.get("/projects/{project_id}/imports/formats", summary="Formats for this project")
def list_formats(project_id: int, session: Session = Depends(get_session)) -> list[dict[str, str]]:
    from app.services.projects import get_project

    project = get_project(session=session, project_id=project_id)
    return [{"key": k, "title": t} for k, t in service.formats_for(project.task_type)]


@router.get(
    "/projects/{project_id}/imports",
    response_model=Page[service.ImportRead],
    summary="List a project's imports, newest first",
)
def list_imports(
    project_id: int,
    page: int = Query(1, ge=1),
    page_size: int = Query(50, ge=1, le=500),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Page[service.ImportRead]:
    rows, total = service.list_imports(
        session, project_id=project_id, page=page, page_size=page_size, storage=storage
    )
    return Page(
        items=[service.read_import(r) for r in rows], total=total, page=page, page_size=page_size
    )


@router.get(
    "/projects/{project_id}/imports/{import_id}",
    response_model=service.ImportRead,
    summary="An import with its counts, warnings and errors",
)
def get_import(
    project_id: int,
    import_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> service.ImportRead:
    return service.read_import(
        service.get_import(session, project_id=project_id, import_id=import_id, storage=storage)
    )


@router.post(
    "/projects/{project_id}/samples/{sample}",
    status_code=202,
    summary="Import a built-in sample dataset (digits)",
)
def import_sample(
    project_id: int, sample: str, session: Session = Depends(get_session)
) -> JSONResponse:
    """`digits`: scikit-learn's 1,797 handwritten digits as 32x32 grey PNGs, 10 classes."""
    job, row = service.start_sample_import(session, project_id=project_id, sample=sample)
    return JSONResponse(_started(job, row), status_code=202)
