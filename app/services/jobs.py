"""Jobs: submit, read, cancel; and the claim/finish steps the worker pool and workers use."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from app.db import utcnow
from app.errors import Conflict, not_found
from app.models import (
    TERMINAL_STATUSES,
    Job,
    JobQueue,
    JobRead,
    JobStatus,
)
from app.services.events import add_event


def submit_job(
    session: Session,
    *,
    kind: str,
    queue: JobQueue = JobQueue.compute,
    project_id: int | None = None,
    target: str = "",
    title: str = "",
    params: dict[str, Any] | None = None,
    commit: bool = True,
) -> Job:
    """Queue a job; the pool picks it up within a poll interval."""
    job = Job(
        kind=kind,
        queue=queue.value,
        project_id=project_id,
        target=target,
        title=title or kind.replace("_", " ").capitalize(),
        params=params or {},
    )
    session.add(job)
    session.flush()
    assert job.id is not None
    add_event(session, job_id=job.id, type="status", payload={"status": "queued"}, commit=False)
    if commit:
        session.commit()
        session.refresh(job)
    return job


class RecordsJob(Protocol):
    """A row that remembers the job doing its work (an import, an evaluation, an export...)."""

    job_id: int | None


def submit_job_for(session: Session, row: RecordsJob, **job: Any) -> Job:
    """Queue a job for `row` and point the row at it: row, job and its first event commit
    together, so no row is left pointing nowhere and no job runs for a row that is not saved.
    The caller flushes the row first when the job's params need its id."""
    queued = submit_job(session, commit=False, **job)
    row.job_id = queued.id
    session.add(row)
    session.commit()
    session.refresh(row)
    session.refresh(queued)
    return queued


def get_job(session: Session, *, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


def read_job(job: Job) -> JobRead:
    return JobRead.model_validate(job, from_attributes=True)


def list_jobs(
    session: Session,
    *,
    project_id: int | None = None,
    status: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> tuple[list[Job], int]:
    query = select(Job)
    count = select(func.count()).select_from(Job)
    if project_id is not None:
        query = query.where(Job.project_id == project_id)
        count = count.where(Job.project_id == project_id)
    if status is not None:
        query = query.where(Job.status == status)
        count = count.where(Job.status == status)
    total = session.exec(count).one()
    items = session.exec(
        query.order_by(col(Job.id).desc()).offset((page - 1) * page_size).limit(page_size)
    ).all()
    return list(items), int(total)


def active_jobs(session: Session, *, project_id: int) -> list[Job]:
    return list(
        session.exec(
            select(Job).where(
                Job.project_id == project_id,
                col(Job.status).in_([JobStatus.queued.value, JobStatus.running.value]),
            )
        )
    )


def cancel_job(session: Session, *, job_id: int) -> Job:
    """Cancel a queued job at once, or ask a running one to stop (the pool signals it)."""
    job = get_job(session, job_id=job_id)
    if job.status in TERMINAL_STATUSES:
        raise Conflict(
            f"Job {job_id} already ended ({job.status}); only queued or running jobs can be "
            "cancelled.",
            code="job_finished",
        )
    if job.status == JobStatus.queued:
        finished = _finish_if(session, job_id, JobStatus.queued, JobStatus.cancelled, "Cancelled")
        if finished:
            session.refresh(job)
            return job
        session.refresh(job)  # the pool claimed it meanwhile: cancel it as a running job
    session.execute(update(Job).where(col(Job.id) == job_id).values(cancel_requested=True))
    # Committed on its own: add_event retries a clash with the worker's own events (the same
    # sequence number) by rolling back, which took the request with it — the cancel was lost.
    session.commit()
    add_event(session, job_id=job_id, type="log", payload={"message": "Cancel requested"})
    session.refresh(job)
    return job


# --- used by the worker pool and the worker processes ---------------------------------------


def claim_next_job(
    session: Session, *, queue: str, queued_before: datetime | None = None
) -> Job | None:
    """Atomically move the oldest queued job of a lane to running; None when there is none.

    The conditional UPDATE (status still 'queued') makes two pools, or two passes of one,
    unable to claim the same job on SQLite and PostgreSQL alike. `queued_before` limits the
    claim to jobs waiting since then (the pool's fallback for the resident predictor).
    """
    for _ in range(5):
        query = select(Job.id).where(Job.status == JobStatus.queued.value, Job.queue == queue)
        if queued_before is not None:
            query = query.where(col(Job.created_at) <= queued_before)
        candidate = session.exec(query.order_by(col(Job.id)).limit(1)).first()
        if candidate is None:
            return None
        now = utcnow()
        result = session.execute(
            update(Job)
            .where(col(Job.id) == candidate, col(Job.status) == JobStatus.queued.value)
            .values(
                status=JobStatus.running.value,
                started_at=now,
                heartbeat_at=now,
                host=socket.gethostname(),
                attempt=Job.attempt + 1,
            )
        )
        session.commit()
        if result.rowcount == 1:  # type: ignore[attr-defined]
            add_event(session, job_id=candidate, type="status", payload={"status": "running"})
            return session.get(Job, candidate)
    return None


def set_pid(session: Session, *, job_id: int, pid: int) -> None:
    session.execute(update(Job).where(col(Job.id) == job_id).values(pid=pid))
    session.commit()


def heartbeat(session: Session, *, job_id: int) -> bool:
    """Refresh a running job's heartbeat; False once the job has left the running state."""
    result = session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == JobStatus.running.value)
        .values(heartbeat_at=utcnow())
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_progress(
    session: Session, *, job_id: int, fraction: float | None, detail: dict[str, Any], message: str
) -> None:
    session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == JobStatus.running.value)
        .values(progress=fraction, progress_detail=detail, message=message[:500])
    )
    session.commit()


def _finish_if(
    session: Session,
    job_id: int,
    expected: JobStatus,
    status: JobStatus,
    message: str,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
    exit_code: int | None = None,
) -> bool:
    values: dict[str, Any] = {
        "status": status.value,
        "finished_at": utcnow(),
        "message": message[:500],
    }
    if error is not None:
        values["error"] = error
    if result is not None:
        values["result"] = result
    if exit_code is not None:
        values["exit_code"] = exit_code
    if status == JobStatus.succeeded:
        values["progress"] = 1.0
    outcome = session.execute(
        update(Job).where(col(Job.id) == job_id, col(Job.status) == expected.value).values(**values)
    )
    session.commit()
    if outcome.rowcount != 1:  # type: ignore[attr-defined]
        return False
    payload: dict[str, Any] = {"status": status.value, "message": message}
    if error is not None:
        payload["error"] = error
    add_event(session, job_id=job_id, type="status", payload=payload)
    return True


def finish_job(
    session: Session,
    *,
    job_id: int,
    status: JobStatus,
    message: str = "",
    error: str | None = None,
    result: dict[str, Any] | None = None,
    exit_code: int | None = None,
) -> bool:
    """Move a running job to a terminal state once; False if something else finished it first."""
    if not status.terminal:
        raise ValueError(f"{status} is not a terminal status")
    return _finish_if(
        session,
        job_id,
        JobStatus.running,
        status,
        message or status.value.capitalize(),
        error=error,
        result=result,
        exit_code=exit_code,
    )


def stale_running_jobs(session: Session, *, stale_after: float) -> list[Job]:
    """Running jobs whose worker has not beaten its heart for `stale_after` seconds."""
    limit = utcnow() - timedelta(seconds=stale_after)
    return list(
        session.exec(
            select(Job).where(
                Job.status == JobStatus.running.value,
                col(Job.heartbeat_at) < limit,
            )
        )
    )


def running_jobs(session: Session) -> list[Job]:
    return list(session.exec(select(Job).where(Job.status == JobStatus.running.value)))


def poll_events(session: Session, *, job_id: int, after: int) -> tuple[list[Any], bool]:
    """Events after `after`, and whether the stream is complete (the job's final status is out).

    The final status event is written right after the status row changes, so a terminal row
    without its event yet just means "poll once more"; after a grace period we stop anyway.
    """
    from app.services.events import list_events

    events = list_events(session, job_id=job_id, after=after)
    done = any(e.type == "status" and e.payload.get("status") in TERMINAL_STATUSES for e in events)
    if not events and not done:
        job = session.get(Job, job_id)
        if job is None:
            return [], True
        if job.status in TERMINAL_STATUSES and job.finished_at is not None:
            done = (utcnow() - job.finished_at).total_seconds() > 5
    return events, done
