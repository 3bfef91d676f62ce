"""Worker exit codes: what docs/architecture.md says is what workers/run.py does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlmodel import Session

from tests.factories import make_job
from tests.jobs.conftest import PoolRunner
from tests.jobs.test_pool import wait_status
from workers import run

ROOT = Path(__file__).resolve().parents[2]


def documented_codes() -> dict[str, int]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    sentence = re.search(r"Exit codes:\s*(.*?)\.", text, re.S)
    assert sentence, "docs/architecture.md no longer states the worker exit codes"
    return {name: int(code) for code, name in re.findall(r"(\d+) (\w+)", sentence.group(1))}


def test_documented_exit_codes_are_the_runner_constants() -> None:
    assert documented_codes() == {
        "done": run.EXIT_OK,
        "failed": run.EXIT_FAILED,
        "cancelled": run.EXIT_CANCELLED,
        "interrupted": run.EXIT_INTERRUPTED,
    }


@pytest.mark.slow
def test_a_failed_worker_exits_with_the_documented_failed_code(
    session: Session, pool: PoolRunner
) -> None:
    job = make_job(session, kind="test.crash")
    failed = wait_status(session, job.id, "failed")
    assert failed.exit_code == documented_codes()["failed"]


@pytest.mark.slow
def test_a_cancelled_worker_exits_with_the_documented_cancelled_code(
    session: Session, pool: PoolRunner
) -> None:
    from app.services.jobs import cancel_job
    from tests.helpers import wait_for
    from tests.jobs.test_pool import status_of

    job = make_job(session, params={"steps": 200, "delay": 0.05})
    wait_for(lambda: status_of(session, job.id).progress, what="the worker to report progress")
    cancel_job(session, job_id=job.id)
    cancelled = wait_status(session, job.id, "cancelled")
    assert cancelled.exit_code == documented_codes()["cancelled"]
