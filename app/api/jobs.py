"""Jobs API: status, SSE event stream (resumable), cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from app.config import Settings
from app.deps import SessionFactory, get_session, get_session_factory, get_settings
from app.models import JobEventRead, JobRead, Page
from app.services import jobs as service
from app.sse import SSE_HEADERS, format_event, parse_last_event_id, poll_stream

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
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_job_events(
    job_id: int,
    request: Request,
    after: int | None = Query(None, ge=0, description="Resume after this event id"),
    last_event_id: str | None = Header(None),
    session: Session = Depends(get_session),
    factory: SessionFactory = Depends(get_session_factory),
    settings: Settings = Depends(get_settings),
) -> StreamingResponse:
    """Each message has `id:` (the per-job sequence), `event:` (status, progress, metric, log,
    result) and JSON `data:`. Reconnect with `Last-Event-ID` (or `?after=`) to resume. The
    stream ends after the job's final status event."""
    await run_in_threadpool(service.get_job, session, job_id=job_id)  # 404 before streaming
    cursor = parse_last_event_id(last_event_id, after)

    async def fetch() -> tuple[list[str], bool]:
        nonlocal cursor

        def work() -> tuple[list[str], bool]:
            nonlocal cursor
            with factory() as poll_session:
                events, done = service.poll_events(poll_session, job_id=job_id, after=cursor)
            messages = []
            for event in events:
                body = JobEventRead.model_validate(event, from_attributes=True)
                messages.append(
                    format_event(body.model_dump(mode="json"), event=event.type, id=event.seq)
                )
                cursor = event.seq
            return messages, done

        return await run_in_threadpool(work)

    stream = poll_stream(
        fetch, is_disconnected=request.is_disconnected, interval=settings.poll_seconds
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobRead, status_code=202, summary="Cancel a job"
)
def cancel_job(job_id: int, session: Session = Depends(get_session)) -> JobRead:
    """A queued job is cancelled at once; a running one gets SIGTERM, then SIGKILL after the
    grace period (STUDIO_CANCEL_GRACE_SECONDS). 409 if the job already ended."""
    return service.read_job(service.cancel_job(session, job_id=job_id))
