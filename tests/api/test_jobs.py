from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import JobStatus
from app.services import jobs as service
from app.services.events import add_event
from tests.factories import make_job
from tests.helpers import assert_api_error


def parse_sse(text: str) -> list[dict]:  # type: ignore[type-arg]
    messages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[key] = fields[key] + "\n" + value if key in fields else value
        if "data" in fields:
            messages.append(fields)
    return messages


def finished_job(session: Session) -> int:
    job = make_job(session, title="Counting")
    assert job.id is not None
    claimed = service.claim_next_job(session, queue="compute")
    assert claimed is not None
    for i in range(1, 4):
        add_event(session, job_id=job.id, type="progress", payload={"done": i, "total": 3})
    service.finish_job(session, job_id=job.id, status=JobStatus.succeeded, result={"n": 3})
    return job.id


def test_get_job_reports_status(client: TestClient, session: Session) -> None:
    job = make_job(session)
    body = client.get(f"/api/jobs/{job.id}").json()
    assert body["status"] == "queued" and body["kind"] == "test.count"
    assert_api_error(client.get("/api/jobs/12345"), 404, "job_not_found")


def test_sse_stream_has_ids_types_and_ends_after_the_final_status(
    client: TestClient, session: Session
) -> None:
    job_id = finished_job(session)
    response = client.get(f"/api/jobs/{job_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    messages = parse_sse(response.text)
    ids = [int(m["id"]) for m in messages]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    types = [m["event"] for m in messages]
    assert types == ["status", "status", "progress", "progress", "progress", "status"]
    assert json.loads(messages[-1]["data"])["payload"]["status"] == "succeeded"


def test_sse_resumes_after_last_event_id(client: TestClient, session: Session) -> None:
    job_id = finished_job(session)
    all_ids = [int(m["id"]) for m in parse_sse(client.get(f"/api/jobs/{job_id}/events").text)]
    resumed = parse_sse(
        client.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": str(all_ids[2])}).text
    )
    assert [int(m["id"]) for m in resumed] == all_ids[3:]
    by_query = parse_sse(
        client.get(f"/api/jobs/{job_id}/events", params={"after": all_ids[4]}).text
    )
    assert [int(m["id"]) for m in by_query] == all_ids[5:]


def test_sse_for_a_missing_job_answers_404(client: TestClient) -> None:
    assert_api_error(client.get("/api/jobs/999/events"), 404, "job_not_found")


def test_cancel_a_queued_job_cancels_at_once(client: TestClient, session: Session) -> None:
    job = make_job(session)
    response = client.post(f"/api/jobs/{job.id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert service.claim_next_job(session, queue="compute") is None


def test_cancel_a_running_job_sets_the_request(client: TestClient, session: Session) -> None:
    job = make_job(session)
    service.claim_next_job(session, queue="compute")
    body = client.post(f"/api/jobs/{job.id}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested"] is True


def test_cancel_a_finished_job_answers_409(client: TestClient, session: Session) -> None:
    job_id = finished_job(session)
    assert_api_error(client.post(f"/api/jobs/{job_id}/cancel"), 409, "job_finished")


def test_list_jobs_filters_by_project_and_status(
    client: TestClient, session: Session, project
) -> None:  # type: ignore[no-untyped-def]
    make_job(session, project_id=project.id)
    make_job(session)
    assert client.get("/api/jobs").json()["total"] == 2
    assert client.get("/api/jobs", params={"project_id": project.id}).json()["total"] == 1
    assert client.get("/api/jobs", params={"status": "running"}).json()["total"] == 0
