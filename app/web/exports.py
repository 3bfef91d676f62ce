"""The Export page: export checkpoints, watch the jobs, read parity reports, download, and
try a model on an image. Every action has a JSON twin in app/api/exports.py / predictions.py."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from sqlmodel import Session

from app.deps import get_session, get_storage
from app.errors import BadRequest, Invalid
from app.models import Export, ExportCreate
from app.services import classes as class_service
from app.services import exports as service
from app.services import predictions as predict_service
from app.services import projects as project_service
from app.storage import Storage
from app.tasks import get_task
from app.templating import render
from app.web.common import nav_context, parse_form
from app.web.nav import register_project_page

router = APIRouter()
register_project_page("export", "Export", "/export", 50)

PREVIEW_BYTES = 2 * 1024 * 1024
# Raster types only: the preview is echoed back as a data: URL.
PREVIEW_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}


def _items(session: Session, project_id: int) -> list[dict[str, Any]]:
    rows = service.list_exports(session=session, project_id=project_id)
    return [_item(session, project_id, row) for row in rows]


def _item(session: Session, project_id: int, row: Export) -> dict[str, Any]:
    return service.export_card(session=session, project_id=project_id, export=row)


def _context(session: Session, project_id: int) -> dict[str, Any]:
    from app.services.gate import preferred_experiment

    project = project_service.get_project(session=session, project_id=project_id)
    read = project_service.read_project(session=session, project=project)
    experiments = service.exportable_experiments(session=session, project_id=project_id)
    return {
        "p": read,
        "items": _items(session, project_id),
        "experiments": experiments,
        # A dual-head model's rollback rule may prefer its baseline (app/services/gate.py).
        "preferred_experiment": preferred_experiment(session, experiments),
        "formats": service.FORMAT_TITLES,
        "default_opset": service.DEFAULT_OPSET,
        "models": service.predictable_exports(session=session, project_id=project_id),
        **nav_context(read, "export"),
    }


@router.get("/projects/{project_id}/export")
def export_page(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    return render(request, "pages/exports/index.html", **_context(session, project_id))


@router.get("/projects/{project_id}/exports/list")
def export_list(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    return render(request, "partials/_export_list.html", **_context(session, project_id))


@router.post("/projects/{project_id}/exports")
def create_exports(
    request: Request,
    project_id: int,
    experiment_id: int = Form(...),
    checkpoint: str = Form("best"),
    formats: list[str] = Form(default=[]),
    opset: int | None = Form(None),
    session: Session = Depends(get_session),
) -> Response:
    """One export job per ticked format; answers the refreshed list."""
    if not formats:
        raise BadRequest("Tick at least one format to export.", code="no_format")
    for fmt in formats:
        data = parse_form(ExportCreate, {"format": fmt, "checkpoint": checkpoint, "opset": opset})
        service.submit_export(
            session=session, project_id=project_id, experiment_id=experiment_id, data=data
        )
    return render(request, "partials/_export_list.html", **_context(session, project_id))


@router.get("/projects/{project_id}/exports/{export_id}/item")
def export_item(
    request: Request,
    project_id: int,
    export_id: int,
    known: str = "",
    session: Session = Depends(get_session),
) -> Response:
    """The export's card; 204 (no swap) while it is still in the state the page shows, so the
    live job card inside keeps its SSE connection."""
    row = service.get_export(session=session, project_id=project_id, export_id=export_id)
    if known and row.status == known and row.status in service.ExportStatus.active:
        return Response(status_code=204)
    response = render(request, "partials/_export_item.html", item=_item(session, project_id, row))
    if row.status not in service.ExportStatus.active:
        response.headers["HX-Trigger"] = "exports-changed"  # the try-it panel reloads its models
    return response


@router.get("/projects/{project_id}/try-panel")
def try_panel(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    return render(request, "partials/_try_panel.html", **_context(session, project_id))


@router.delete("/projects/{project_id}/exports/{export_id}")
def delete_export(
    request: Request,
    project_id: int,
    export_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    row = service.get_export(session=session, project_id=project_id, export_id=export_id)
    service.delete_export(
        session=session,
        storage=storage,
        project_id=project_id,
        experiment_id=row.experiment_id,
        export_id=export_id,
    )
    response = render(request, "partials/_export_list.html", **_context(session, project_id))
    response.headers["HX-Trigger"] = "exports-changed"
    return response


def _float_or_none(raw: str) -> float | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise Invalid(
            f"score_threshold={raw!r} is not a number; use 0-1.", code="invalid_score_threshold"
        ) from None


@router.post("/projects/{project_id}/try")
def try_model(
    request: Request,
    project_id: int,
    files: list[UploadFile] = File(default=[]),
    export_id: int | None = Form(None),
    score_threshold: str = Form(""),
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    """The try-it panel: the same prediction path as POST /api/projects/{pid}/predict."""
    threshold = _float_or_none(score_threshold)
    uploads = [
        predict_service.Upload(
            name=f.filename or f"image{i + 1}",
            data=f.file.read(),
            content_type=f.content_type or "",
        )
        for i, f in enumerate(files)
        if f.filename or f.size
    ]
    job, export = predict_service.submit_prediction(
        session=session,
        storage=storage,
        project_id=project_id,
        export_id=export_id,
        uploads=uploads,
        score_threshold=threshold,
    )
    assert job.id is not None
    finished = predict_service.wait_for_job(session=session, job_id=job.id, timeout=60)
    answer = predict_service.prediction_answer(finished) if finished.status != "running" else {}
    previews = [
        f"data:{u.content_type};base64," + base64.b64encode(u.data).decode()
        if len(u.data) <= PREVIEW_BYTES and u.content_type in PREVIEW_TYPES
        else None
        for u in uploads
    ]
    return render(
        request,
        "partials/_predictions.html",
        answer=answer,
        job=finished,
        previews=previews,
        export=export,
        spec=get_task(
            project_service.get_project(session=session, project_id=project_id).task_type
        ),
        colors=class_service.class_colors(session=session, project_id=project_id),
    )
