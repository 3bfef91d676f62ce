"""What users read when a job fails on a bad day: plain words, never SQL, object reprs or
absolute workspace paths; the details stay in the job's log."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from app.config import Settings
from app.services.events import list_events
from tests.factories import make_job
from tests.jobs.conftest import PoolRunner
from tests.jobs.test_pool import wait_status

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize(
    ("fault", "plain"),
    [
        ("disk_full", "disk holding the studio's workspace or database is full"),
        ("permission", "no permission to write a file in its workspace"),
        ("image", "An image could not be read"),
    ],
)
def test_job_errors_are_plain_and_hide_internals(
    session: Session, pool: PoolRunner, settings: Settings, fault: str, plain: str
) -> None:
    job = make_job(session, kind="test.fault", params={"fault": fault})
    failed = wait_status(session, job.id, "failed")
    shown = f"{failed.error} {failed.message}"
    assert plain in shown, shown
    for leak in (str(settings.workspace_dir), "[SQL:", "sqlalche.me", " at 0x", "Traceback"):
        assert leak not in shown, (leak, shown)
    logged = [e.payload for e in list_events(session, job_id=job.id) if e.payload.get("traceback")]
    assert logged, "the details belong in the job log"
    assert str(settings.workspace_dir) not in str(logged)
