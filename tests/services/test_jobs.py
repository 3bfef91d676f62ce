from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.models import JobStatus
from app.services import jobs as service
from tests.factories import make_job


def test_claim_is_atomic_when_claimers_race(engine: Engine, session: Session) -> None:
    """Several claimers read the same queued job before any of them writes: exactly one may
    win. A barrier in front of the claiming UPDATE forces that interleaving every time, so a
    claim without its conditional UPDATE (status still 'queued') fails here."""
    job = make_job(session)
    claimers = 4
    barrier = threading.Barrier(claimers, timeout=20)
    local = threading.local()

    def hold_first_claim(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        sql = statement.lstrip().upper()
        claiming = sql.startswith("UPDATE JOB SET") and "ATTEMPT" in sql
        if claiming and not getattr(local, "waited", False):
            local.waited = True
            barrier.wait()

    def claim() -> int | None:
        with Session(engine) as own:
            claimed = service.claim_next_job(own, queue="compute")
            return claimed.id if claimed is not None else None

    event.listen(engine, "before_cursor_execute", hold_first_claim)
    try:
        with ThreadPoolExecutor(max_workers=claimers) as pool:
            results = list(pool.map(lambda _: claim(), range(claimers)))
    finally:
        event.remove(engine, "before_cursor_execute", hold_first_claim)
    assert sorted(results, key=lambda r: r or 0) == [None] * (claimers - 1) + [job.id]
    session.refresh(job)
    assert job.status == "running" and job.attempt == 1


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
