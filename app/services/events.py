"""Job events: the append-only log behind the SSE streams and the job cards."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.models import JobEvent

EVENT_TYPES = ("status", "progress", "metric", "log", "result")


def add_event(
    session: Session, *, job_id: int, type: str, payload: dict[str, Any], commit: bool = True
) -> JobEvent:
    """Append an event with the next per-job sequence number (the SSE `id:`).

    Writers of one job are sequential in practice (its worker, then the pool); the unique
    (job_id, seq) constraint turns a rare race into a retry instead of a duplicate id.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    for _attempt in range(5):
        last = session.exec(select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id)).one()
        event = JobEvent(job_id=job_id, seq=(last or 0) + 1, type=type, payload=payload)
        session.add(event)
        try:
            if commit:
                session.commit()
            else:
                session.flush()
            return event
        except IntegrityError:
            session.rollback()
    raise RuntimeError(f"could not append an event to job {job_id}")


def list_events(
    session: Session, *, job_id: int, after: int = 0, limit: int = 500
) -> list[JobEvent]:
    return list(
        session.exec(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(col(JobEvent.seq))
            .limit(limit)
        )
    )
