"""The domain-generalisation card of the evaluation page: queue a report over a
leave-one-group-out family and read its gaps (JSON twin: /api/projects/{pid}/dg-reports)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlmodel import Session

from app.deps import get_session
from app.errors import Invalid
from app.models.dg_report import DGReportCreate
from app.services import dg_reports as service
from app.services import projects as project_service
from app.services import splits as split_service
from app.templating import render
from app.web.common import parse_form

router = APIRouter()


def _card(request: Request, session: Session, project_id: int) -> Response:
    project_service.get_project(session=session, project_id=project_id)
    families: dict[str, Any] = {}
    for split in split_service.list_splits(session, project_id):
        if split.strategy == "leave_one_group_out" and split.family:
            families.setdefault(split.family, split)  # newest first: any member will do
    reports = [service.read_report(session, r) for r in service.list_reports(session, project_id)]
    return render(
        request,
        "partials/_dg_reports.html",
        project_id=project_id,
        families=families,
        reports=reports,
    )


@router.get("/projects/{project_id}/evaluation/dg-reports")
def dg_card(request: Request, project_id: int, session: Session = Depends(get_session)) -> Response:
    return _card(request, session, project_id)


@router.post("/projects/{project_id}/evaluation/dg-reports")
async def create_dg_report(
    request: Request, project_id: int, session: Session = Depends(get_session)
) -> Response:
    form = await request.form()
    raw = str(form.get("config") or "").strip()
    try:
        config = json.loads(raw) if raw else {}
    except json.JSONDecodeError as error:
        raise Invalid(
            f"Recipe: not valid JSON ({error.msg} at character {error.pos}).",
            code="validation_error",
        ) from None
    if not isinstance(config, dict):
        raise Invalid('Recipe: a JSON object such as {"epochs": 5}.', code="validation_error")
    split = str(form.get("split_id") or "")
    data = parse_form(
        DGReportCreate,
        {
            "split_id": split if split.isdigit() else None,
            "config": config,
            "name": form.get("name"),
        },
    )
    service.create_report(session, project_id, data)
    return _card(request, session, project_id)
