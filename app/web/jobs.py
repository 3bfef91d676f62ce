"""Job pages: the list, one job's page, and the live job card (SSE with a polling fallback)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from app.deps import get_session, get_streams
from app.errors import not_found
from app.models import JobRead
from app.services import jobs as service
from app.services import projects as project_service
from app.services.events import list_events
from app.streams import EventStreamResponse, StreamHub
from app.templating import render, templates
from app.web.common import nav_context
from app.web.job_events import describe_event

router = APIRouter()


@router.get("/jobs")
def jobs_page(request: Request, session: Session = Depends(get_session)) -> Response:
    jobs, total = service.list_jobs(session, page_size=100)
    names = project_service.project_names(
        session=session, project_ids={j.project_id for j in jobs if j.project_id is not None}
    )
    return render(
        request,
        "pages/jobs/list.html",
        jobs=jobs,
        total=total,
        project_names=names,
        **nav_context(None, "jobs"),
    )


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: int, session: Session = Depends(get_session)) -> Response:
    job = service.get_job(session, job_id=job_id)
    project = None
    if job.project_id is not None:
        project = project_service.read_project(
            session=session,
            project=project_service.get_project(session=session, project_id=job.project_id),
        )
    events = [describe_event(e) for e in list_events(session, job_id=job_id, after=0, limit=1000)]
    return render(
        request, "pages/jobs/detail.html", job=job, events=events, **nav_context(project, "jobs")
    )


@router.get("/jobs/{job_id}/card")
def job_card(request: Request, job_id: int, session: Session = Depends(get_session)) -> Response:
    job = service.get_job(session, job_id=job_id)
    return render(request, "partials/_job_card.html", job=job)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: int, session: Session = Depends(get_session)) -> Response:
    job = service.cancel_job(session, job_id=job_id)
    return render(request, "partials/_job_card.html", job=job)


@router.get("/jobs/{job_id}/card-stream")
async def job_card_stream(
    request: Request, job_id: int, hub: StreamHub = Depends(get_streams)
) -> EventStreamResponse:
    """The job card re-rendered whenever the job row changes; `done` closes the stream."""
    hub.check()
    if not await run_in_threadpool(hub.job_exists, job_id):
        raise not_found("job", job_id)
    template = templates.get_template("partials/_job_card.html")

    def card(job: JobRead) -> str:
        return template.render(request=request, job=job)

    return EventStreamResponse(hub, lambda: hub.job_cards(job_id, card))
