"""The job page: its events as a table of readable lines."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.services.events import add_event
from tests.factories import make_job


def test_job_page_lists_events_as_a_readable_table(client: TestClient, session: Session) -> None:
    job = make_job(session)
    assert job.id is not None
    epoch = {
        "kind": "epoch",
        "epoch": 1,
        "epochs": 2,
        "seconds": 3.0,
        "metrics": {"images_per_s": 480.0},
    }
    add_event(session, job_id=job.id, type="metric", payload=epoch)
    page = client.get(f"/jobs/{job.id}").text
    assert 'data-testid="event-table"' in page
    assert "epoch 1/2 · 480 images/s · took 3.0 s" in page
    assert "images_per_s" not in page and "{&#34;" not in page  # no raw JSON
