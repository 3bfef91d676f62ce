"""Jobs API: status, SSE event stream (resumable), cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from app.deps import get_session, get_streams
from app.errors import not_found
from app.models import JobRead, Page
from app.services import jobs as service
from app.sse import parse_last_event_id
from app.streams import EventStreamResponse, StreamHub

router = APIRouter(tags=["jobs"])


@router.get("/jobs", response_model=Page[JobRead], summary="List jobs, newest first")
def list_jobs(
    project_id: int | None = None,
    status: str | None = Query(None, max_length=20),
    page: int = Query(1, ge=1),
    page_size: int = Query(50, ge=1, le=500),
    session: Session = Depends(get_session),
) -> Page[JobRead]:
    items, total = service.list_jobs(
        session, project_id=project_id, status=status, page=page, page_size=page_size
    )
    return Page(
        items=[service.read_job(j) for j in items], total=total, page=page, page_size=page_size
    )


@router.get("/jobs/{job_id}", response_model=JobRead, summary="Get a job")
def get_job(job_id: int, session: Session = Depends(get_session)) -> JobRead:
    """Status is one of queued, running, succeeded, failed, cancelled, interrupted."""
    return service.read_job(service.get_job(session, job_id=job_id))


@router.get(
    "/jobs/{job_id}/events",
    summary="Stream a job's events (SSE)",
    response_class=EventStreamResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        503: {"description": "Too many open streams (STUDIO_MAX_STREAMS); see Retry-After."},
    },
)
async def stream_job_events(
    job_id: int,
    after: int | None = Query(None, ge=0, description="Resume after this event id"),
    last_event_id: str | None = Header(None),
    hub: StreamHub = Depends(get_streams),
) -> EventStreamResponse:
    """Each message has `id:` (the per-job sequence), `event:` (status, progress, metric, log,
    result) and JSON `data:`. Reconnect with `Last-Event-ID` (or `?after=`) to resume. The
    stream ends after the job's final status event. Holds no database connection while open."""
    hub.check()
    if not await run_in_threadpool(hub.job_exists, job_id):  # 404 before streaming
        raise not_found("job", job_id)
    cursor = parse_last_event_id(last_event_id, after)
    return EventStreamResponse(hub, lambda: hub.job_events(job_id, cursor))


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobRead, status_code=202, summary="Cancel a job"
)
def cancel_job(job_id: int, session: Session = Depends(get_session)) -> JobRead:
    """A queued job is cancelled at once; a running one gets SIGTERM, then SIGKILL after the
    grace period (STUDIO_CANCEL_GRACE_SECONDS). 409 if the job already ended."""
    return service.read_job(service.cancel_job(session, job_id=job_id))
