"""Training as a job in real worker processes: live events, SSE, stop/resume, kill -9/resume."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Job, MetricPoint, Project
from app.storage import Storage
from tests.factories import make_digits, make_split
from tests.helpers import wait_for
from tests.jobs.conftest import PoolRunner

pytestmark = [pytest.mark.slow]

TIMEOUT = 240


def experiment(client: TestClient, project: Project, eid: int) -> dict[str, Any]:
    response = client.get(f"/api/projects/{project.id}/experiments/{eid}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_experiment(client: TestClient, project: Project, eid: int, what: str, check: Any) -> Any:
    def probe() -> Any:
        state = experiment(client, project, eid)
        if state["status"] == "failed":
            raise AssertionError(f"experiment failed while waiting for {what}: {state}")
        return check(state) and state

    return wait_for(
        probe,
        timeout=TIMEOUT,
        interval=0.3,
        what=what,
    )


@pytest.fixture
def digits_split(session: Session, storage: Storage, project: Project) -> int:
    assert project.id is not None
    images = make_digits(session, storage, project.id, per_class=5)
    split = make_split(session, project.id, images, ratios=(0.6, 0.2, 0.2))
    assert split.id is not None
    return split.id


def create(client: TestClient, project: Project, split_id: int, **body: Any) -> int:
    response = client.post(
        f"/api/projects/{project.id}/experiments",
        json={"name": "run", "split_id": split_id, "warmup_epochs": 0, "batch_size": 8, **body},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def epochs_of(session: Session, eid: int, key: str = "val/acc") -> list[int]:
    session.expire_all()
    rows = session.exec(
        select(MetricPoint).where(MetricPoint.experiment_id == eid, MetricPoint.key == key)
    ).all()
    return sorted(p.epoch for p in rows)


def sse_events(client: TestClient, job_id: int) -> list[tuple[str, dict[str, Any]]]:
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.status_code == 200
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind:
                events.append((kind, json.loads(line.split(":", 1)[1])["payload"]))
    return events


def test_stop_then_resume_completes_with_live_events(
    client: TestClient, session: Session, project: Project, digits_split: int, pool: PoolRunner
) -> None:
    eid = create(client, project, digits_split, epochs=50)
    base = f"/api/projects/{project.id}/experiments/{eid}"
    job_id = client.post(f"{base}/train").json()["job"]["id"]
    wait_experiment(client, project, eid, "first epoch", lambda e: e["epochs_done"] >= 1)
    stopping = client.post(f"{base}/stop")
    assert stopping.status_code == 202 and stopping.json()["status"] == "stopping"
    stopped = wait_experiment(client, project, eid, "stopped", lambda e: e["status"] == "stopped")
    assert stopped["checkpoints"]["last"] and stopped["epochs_done"] < 50

    # The job says what the experiment says: stopped on request (cancelled), not "succeeded
    # 100 %"; its message names the epoch and the way back.
    def job_ended() -> Job | None:
        session.expire_all()
        row = session.get(Job, job_id)
        return row if row is not None and row.status not in ("queued", "running") else None

    job = wait_for(job_ended, timeout=TIMEOUT, what="the train job to end")
    assert job.status == "cancelled", (job.status, job.message)
    assert f"Stopped after epoch {stopped['epochs_done']}" in job.message
    assert job.progress is not None and job.progress < 1.0

    # The finished job's SSE stream carries status, progress, per-epoch metrics, checkpoints.
    events = sse_events(client, job_id)
    kinds = {k for k, _ in events}
    assert {"status", "progress", "metric"} <= kinds
    epoch_metrics = [d for k, d in events if k == "metric" and d.get("kind") == "epoch"]
    assert epoch_metrics and "val/acc" in epoch_metrics[0]["metrics"]
    assert epoch_metrics[0]["epochs"] == 50 and epoch_metrics[0]["eta_seconds"] is not None
    assert any(k == "metric" and d.get("kind") == "checkpoint" for k, d in events)
    assert any(k == "metric" and d.get("kind") == "step" and "loss" in d for k, d in events)
    assert events[-1][0] == "status" and events[-1][1]["status"] == "cancelled"
    assert all("path" not in d for k, d in events if k == "metric")  # no server paths leak

    done = stopped["epochs_done"]
    resumed = client.post(f"{base}/resume", json={"epochs": done + 1})
    assert resumed.status_code == 202, resumed.text
    completed = wait_experiment(
        client, project, eid, "completed", lambda e: e["status"] == "completed"
    )
    assert completed["epochs_done"] == done + 1
    assert completed["test_metrics"]["checkpoint"] == "best"
    assert completed["provenance"]["resumes"]
    assert epochs_of(session, eid) == list(range(1, done + 2))
    series = client.get(f"{base}/metrics").json()["series"]
    assert "test/accuracy" in series and len(series["val/acc"]) == done + 1


def test_killed_worker_leaves_experiment_interrupted_and_resumable(
    client: TestClient, session: Session, project: Project, digits_split: int, pool: PoolRunner
) -> None:
    eid = create(client, project, digits_split, epochs=50)
    base = f"/api/projects/{project.id}/experiments/{eid}"
    job_id = client.post(f"{base}/train").json()["job"]["id"]
    wait_experiment(client, project, eid, "first epoch", lambda e: e["epochs_done"] >= 1)
    session.expire_all()
    job = session.get(Job, job_id)
    assert job is not None and job.pid
    os.killpg(job.pid, signal.SIGKILL)
    state = wait_experiment(
        client, project, eid, "interrupted", lambda e: e["status"] == "interrupted"
    )
    done = state["checkpoints"]["last"]["epoch"]
    assert done >= 1
    response = client.post(f"{base}/train", json={"resume": True, "epochs": done + 1})
    assert response.status_code == 202, response.text
    wait_experiment(client, project, eid, "completed", lambda e: e["status"] == "completed")
    # No completed epoch was lost or repeated.
    assert epochs_of(session, eid) == list(range(1, done + 2))
