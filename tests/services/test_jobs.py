from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.models import JobStatus
from app.services import jobs as service
from tests.factories import make_job


def test_claim_is_atomic_across_sessions(engine: Engine, session: Session) -> None:
    job = make_job(session)
    with Session(engine) as a, Session(engine) as b:
        first = service.claim_next_job(a, queue="compute")
        second = service.claim_next_job(b, queue="compute")
    assert first is not None and first.id == job.id
    assert second is None


def test_claim_takes_oldest_first_and_respects_lanes(session: Session) -> None:
    older = make_job(session)
    make_job(session)
    light = make_job(session, queue=service.JobQueue.light)
    assert service.claim_next_job(session, queue="light").id == light.id  # type: ignore[union-attr]
    assert service.claim_next_job(session, queue="compute").id == older.id  # type: ignore[union-attr]


def test_finish_is_once_only(session: Session) -> None:
    job = make_job(session)
    service.claim_next_job(session, queue="compute")
    assert service.finish_job(session, job_id=job.id, status=JobStatus.failed, error="x")  # type: ignore[arg-type]
    assert not service.finish_job(session, job_id=job.id, status=JobStatus.succeeded)  # type: ignore[arg-type]
    session.refresh(job)
    assert job.status == "failed" and job.finished_at is not None
    assert job.finished_at.tzinfo is not None


def test_event_sequence_is_per_job(session: Session) -> None:
    from app.services.events import add_event, list_events

    a = make_job(session)
    b = make_job(session)
    add_event(session, job_id=a.id, type="log", payload={"message": "x"})  # type: ignore[arg-type]
    add_event(session, job_id=b.id, type="log", payload={"message": "y"})  # type: ignore[arg-type]
    assert [e.seq for e in list_events(session, job_id=a.id)] == [1, 2]  # type: ignore[arg-type]
    assert [e.seq for e in list_events(session, job_id=b.id, after=1)] == [2]  # type: ignore[arg-type]
