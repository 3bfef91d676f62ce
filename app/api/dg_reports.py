"""Domain-generalisation reports API: queue one experiment per held-out group, read the gaps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlmodel import Session

from app.deps import get_session
from app.models.dg_report import DGReportCreate
from app.services import dg_reports as service
from app.services import jobs as job_service

router = APIRouter(tags=["dg-reports"])

BASE = "/projects/{project_id}/dg-reports"


@router.post(BASE, status_code=202, summary="Create a domain-generalisation report")
def create_report(
    project_id: int, data: DGReportCreate, session: Session = Depends(get_session)
) -> dict[str, Any]:
    """`{"split_id": <any split of a leave_one_group_out family>, "config": {recipe}}`: one
    experiment per held-out group with that recipe, each queued for training (202 + jobs)."""
    report, jobs = service.create_report(session, project_id, data)
    return {
        "report": service.read_report(session, report),
        "jobs": [job_service.read_job(job) for job in jobs],
    }


@router.get(BASE, summary="List domain-generalisation reports")
def list_reports(project_id: int, session: Session = Depends(get_session)) -> dict[str, Any]:
    items = [service.read_report(session, r) for r in service.list_reports(session, project_id)]
    return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}


@router.get(f"{BASE}/{{report_id}}", summary="Get a domain-generalisation report")
def get_report(
    project_id: int, report_id: int, session: Session = Depends(get_session)
) -> dict[str, Any]:
    """Per group `{group, in_domain, held_out, gap}` (in-domain: the val subset of the groups
    trained on; held-out: the group's own images), `mean_gap` and its bootstrap `ci95`."""
    return service.read_report(session, service.get_report(session, project_id, report_id))
