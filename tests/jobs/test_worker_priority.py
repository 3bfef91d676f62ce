"""Workers run niced (STUDIO_WORKER_NICE), so on a busy CPU request handling comes first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session

from tests.factories import make_job
from tests.helpers import wait_for
from tests.jobs.conftest import PoolRunner
from tests.jobs.test_pool import status_of

pytestmark = [pytest.mark.slow]


def test_workers_run_at_the_configured_niceness(session: Session, pool: PoolRunner) -> None:
    job = make_job(session, params={"steps": 100, "delay": 0.05})
    pid = wait_for(lambda: status_of(session, job.id).pid, what="the worker to start")
    nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    assert nice == os.getpriority(os.PRIO_PROCESS, 0) + 10 or nice == 10
