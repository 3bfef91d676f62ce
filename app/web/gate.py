"""The gate card of a dual-head experiment's evaluation page: rules (editable), calibration,
in-domain pass rates, the out-of-domain test set (upload, rejection rate, examples)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlmodel import Session
from starlette.datastructures import UploadFile

from app.deps import get_session, get_storage
from app.errors import Invalid
from app.models import TERMINAL_STATUSES
from app.services import gate as service
from app.storage import Storage
from app.templating import render

router = APIRouter()
BASE = "/projects/{project_id}/evaluation/{experiment_id}/gate"


def _card(
    request: Request,
    session: Session,
    project_id: int,
    experiment_id: int,
    job_id: int | None = None,
) -> Response:
    gate = service.read_gate(session, project_id=project_id, experiment_id=experiment_id)
    job = service.gate_job(session, job_id) if job_id else None
    return render(
        request,
        "partials/tasks/classification/_gate.html",
        gate=gate,
        project_id=project_id,
        experiment_id=experiment_id,
        job=job,
        running=job is not None and job.status not in TERMINAL_STATUSES,
    )


@router.get(BASE)
def gate_card(
    request: Request,
    project_id: int,
    experiment_id: int,
    job: int | None = None,
    session: Session = Depends(get_session),
) -> Response:
    return _card(request, session, project_id, experiment_id, job)


def _number(form: Any, name: str) -> float | None:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise Invalid(f"{name} must be a number; got {raw!r}.", code="invalid_gate") from None


@router.post(BASE)
async def save_rules(
    request: Request,
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
) -> Response:
    form = await request.form()
    data: dict[str, Any] = {}
    for name in ("default_min_ratio", "min_component_px"):
        value = _number(form, name)
        if value is not None:
            data[name] = value
    distance = _number(form, "max_feature_distance")
    if distance is not None:  # 0 turns the familiarity rule off
        data["max_feature_distance"] = distance if distance > 0 else None
    if data:
        service.patch_gate(session, project_id=project_id, experiment_id=experiment_id, data=data)
    return _card(request, session, project_id, experiment_id)


@router.post(BASE + "/test-set")
async def test_set(
    request: Request,
    project_id: int,
    experiment_id: int,
    session: Session = Depends(get_session),
    storage: Storage = Depends(get_storage),
) -> Response:
    form = await request.form()
    uploads = [
        (f.filename or f"file{i + 1}", await f.read())
        for i, f in enumerate(form.getlist("files"))
        if isinstance(f, UploadFile) and f.filename
    ]
    job = service.submit_test_set(
        session, storage, project_id=project_id, experiment_id=experiment_id, uploads=uploads
    )
    return _card(request, session, project_id, experiment_id, job.id)
