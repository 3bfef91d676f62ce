"""The job runner end to end: real pool, real `python -m workers.run` children."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from sqlmodel import Session

from app.config import Settings
from app.models import Job, JobQueue
from app.services.events import list_events
from tests.factories import make_job
from tests.helpers import wait_for
from tests.jobs.conftest import ROOT, PoolRunner, worker_pid_alive

pytestmark = [pytest.mark.slow, pytest.mark.both_databases]


def status_of(session: Session, job_id: int) -> Job:
    session.expire_all()
    job = session.get(Job, job_id)
    assert job is not None
    return job


def wait_status(session: Session, job_id: int, *statuses: str, timeout: float = 60) -> Job:
    return wait_for(
        lambda: (j := status_of(session, job_id)).status in statuses and j,
        timeout=timeout,
        what=f"job {job_id} to reach {statuses}",
    )


def test_job_runs_in_its_own_process_group_and_reports_progress(
    session: Session, pool: PoolRunner
) -> None:
    job = make_job(session, params={"steps": 5, "delay": 0.05})
    running = wait_for(lambda: (j := status_of(session, job.id)).pid and j, what="pid")
    assert running.pid != os.getpid()
    done = wait_status(session, job.id, "succeeded")
    assert done.result == {"counted": 5}
    assert done.progress == 1.0 and done.exit_code == 0
    # The final status event is written just after the row changes (jobs.poll_events reads
    # once more for it), so it may be a moment behind the row that wait_status saw.
    events = wait_for(
        lambda: (
            (found := list_events(session, job_id=job.id))
            and any(e.type == "status" and e.payload["status"] == "succeeded" for e in found)
            and found
        ),
        what="the final status event",
    )
    progress = [e.payload["done"] for e in events if e.type == "progress"]
    assert progress == [1, 2, 3, 4, 5]
    assert [e.payload["status"] for e in events if e.type == "status"] == [
        "queued",
        "running",
        "succeeded",
    ]
    assert any(e.type == "log" and e.payload["message"] == "counted" for e in events)


def test_crashing_handler_fails_with_the_error_visible(session: Session, pool: PoolRunner) -> None:
    job = make_job(session, kind="test.crash")
    failed = wait_status(session, job.id, "failed", "succeeded")
    assert failed.status == "failed"
    assert "boom: the test handler crashed on purpose" in (failed.error or "")
    tracebacks = [e for e in list_events(session, job_id=job.id) if e.payload.get("traceback")]
    assert tracebacks and "RuntimeError" in tracebacks[0].payload["traceback"]


def test_worker_dying_silently_fails_with_its_log_tail(session: Session, pool: PoolRunner) -> None:
    job = make_job(session, kind="test.exit", params={"code": 7})
    failed = wait_status(session, job.id, "failed")
    assert failed.exit_code == 7
    assert "exited with code 7" in (failed.error or "")
    assert "worker: exiting hard" in (failed.error or "")


def test_unknown_kind_fails_clearly(session: Session, pool: PoolRunner) -> None:
    job = make_job(session, kind="no.such.kind")
    failed = wait_status(session, job.id, "failed")
    assert "No handler for job kind 'no.such.kind'" in (failed.error or "")


def test_cooperative_job_cancels_at_a_safe_point(session: Session, pool: PoolRunner) -> None:
    from app.services.jobs import cancel_job

    job = make_job(session, params={"steps": 1000, "delay": 0.05})
    wait_for(lambda: (status_of(session, job.id).progress or 0) > 0, what="progress")
    cancel_job(session, job_id=job.id)
    # Wait for any end so a wrong one fails with what happened instead of a bare timeout. The
    # worker is niced (STUDIO_WORKER_NICE): on a machine loaded by other processes it may wait
    # seconds for a core, so the bound is as generous as the kill tests'; the exit code still
    # tells a cooperative stop (4) from a kill after the grace period.
    ended = wait_status(session, job.id, "cancelled", "failed", "interrupted", timeout=30)
    assert ended.status == "cancelled", (ended.status, ended.message, ended.error)
    assert ended.exit_code == 4  # the worker wrote its own status, well inside the grace


def test_hanging_job_is_killed_after_the_grace_period(session: Session, pool: PoolRunner) -> None:
    from app.services.jobs import cancel_job

    job = make_job(session, kind="test.hang")
    pid = wait_for(lambda: status_of(session, job.id).pid, what="pid")
    wait_for(lambda: status_of(session, job.id).message == "hanging", what="hang")
    cancel_job(session, job_id=job.id)
    cancelled = wait_status(session, job.id, "cancelled", "failed", "interrupted", timeout=30)
    assert cancelled.status == "cancelled"
    assert cancelled.exit_code == -signal.SIGKILL
    assert not worker_pid_alive(pid)


def test_job_ignoring_sigterm_is_killed(session: Session, pool: PoolRunner) -> None:
    from app.services.jobs import cancel_job

    job = make_job(session, kind="test.ignore_term")
    pid = wait_for(lambda: status_of(session, job.id).pid, what="pid")
    wait_for(lambda: status_of(session, job.id).message == "ignoring SIGTERM", what="start")
    cancel_job(session, job_id=job.id)
    cancelled = wait_status(session, job.id, "cancelled", "failed", "interrupted", timeout=30)
    assert cancelled.status == "cancelled"
    assert not worker_pid_alive(pid)


def test_killed_worker_becomes_interrupted_after_a_supervisor_restart(
    session: Session, pool: PoolRunner
) -> None:
    job = make_job(session, params={"steps": 10_000, "delay": 0.05})
    wait_for(lambda: (status_of(session, job.id).progress or 0) > 0, what="progress")
    pid = status_of(session, job.id).pid
    assert pid is not None
    pool.stop(signal.SIGKILL)  # the server dies; its worker lives on, orphaned
    assert worker_pid_alive(pid)
    os.kill(pid, signal.SIGKILL)  # ... and then the worker is killed too
    wait_for(lambda: not worker_pid_alive(pid), what="worker to die")
    assert status_of(session, job.id).status == "running"  # nobody has noticed yet
    pool.start()
    interrupted = wait_status(session, job.id, "interrupted", timeout=30)
    assert "gone" in interrupted.message


def test_restarted_supervisor_adopts_a_live_worker(session: Session, pool: PoolRunner) -> None:
    job = make_job(session, params={"steps": 40, "delay": 0.05})
    wait_for(lambda: (status_of(session, job.id).progress or 0) > 0, what="progress")
    pool.stop(signal.SIGKILL)
    pool.start()
    done = wait_status(session, job.id, "succeeded", "interrupted", timeout=60)
    assert done.status == "succeeded"


def test_supervisor_shutdown_interrupts_running_jobs(session: Session, pool: PoolRunner) -> None:
    job = make_job(session, params={"steps": 10_000, "delay": 0.05})
    wait_for(lambda: (status_of(session, job.id).progress or 0) > 0, what="progress")
    pool.stop(signal.SIGTERM)
    interrupted = wait_status(session, job.id, "interrupted", timeout=5)
    assert interrupted.exit_code == 5


def test_light_lane_runs_beside_a_busy_compute_lane(session: Session, pool: PoolRunner) -> None:
    busy = make_job(session, params={"steps": 10_000, "delay": 0.05})
    quick = make_job(session, queue=JobQueue.light, params={"steps": 2, "delay": 0.01})
    wait_status(session, quick.id, "succeeded")
    assert status_of(session, busy.id).status == "running"
    queued = make_job(session, params={"steps": 1})
    assert status_of(session, queued.id).status == "queued"  # the one compute slot is taken


def test_pool_stops_its_workers_when_the_studio_process_is_killed(
    session: Session, settings: Settings
) -> None:
    """A SIGKILLed web process cannot stop its pool; the pool must notice and stop itself."""
    launcher = (
        "import os, subprocess, sys, time\n"
        "env = {**os.environ, 'STUDIO_POOL_PARENT_PID': str(os.getpid())}\n"
        "pool = subprocess.Popen([sys.executable, '-m', 'workers.pool'], env=env,\n"
        "                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(pool.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, **settings.child_env(), "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", launcher], cwd=ROOT, env=env, stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        pool_pid = int(parent.stdout.readline())
        job = make_job(session, params={"steps": 10_000, "delay": 0.05})
        wait_status(session, job.id, "running")
        parent.kill()
        parent.wait()
        wait_for(lambda: not worker_pid_alive(pool_pid), timeout=30, what="the pool to exit")
        interrupted = wait_status(session, job.id, "interrupted", timeout=5)
        assert interrupted.pid is not None and not worker_pid_alive(interrupted.pid)
    finally:
        parent.kill()
