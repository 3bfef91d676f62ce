"""Exports and predict API: request validation and the record shape (no training needed; the
end-to-end export, download and predict run in tests/jobs/test_export_jobs.py)."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.db import utcnow
from app.models import Experiment, Export, Job, JobStatus, Project
from app.services.jobs import finish_job
from tests.factories import make_project
from tests.helpers import assert_api_error


def make_experiment(session: Session, project: Project, **overrides: object) -> Experiment:
    data: dict[str, object] = {
        "project_id": project.id,
        "name": "tiny cnn",
        "status": "completed",
        "checkpoints": {"best": {"path": "nowhere.ckpt", "epoch": 1, "metric": 0.5}},
    }
    data.update(overrides)
    experiment = Experiment(**data)
    session.add(experiment)
    session.commit()
    session.refresh(experiment)
    return experiment


def url(project: Project, experiment: Experiment, tail: str = "") -> str:
    return f"/api/projects/{project.id}/experiments/{experiment.id}/exports{tail}"


def test_post_export_answers_202_with_job_and_queued_record(
    client: TestClient, session: Session, project: Project
) -> None:
    experiment = make_experiment(session, project)
    response = client.post(url(project, experiment), json={"format": "onnx", "checkpoint": "best"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["job"]["kind"] == "export" and body["job"]["status"] == "queued"
    record = body["export"]
    assert record["status"] == "queued" and record["format"] == "onnx"
    assert record["options"] == {"opset": 17}
    assert record["job_id"] == body["job"]["id"]
    assert record["validation"] == {} and record["metadata"] == {}
    assert record["download_url"] is None
    listed = client.get(url(project, experiment)).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == record["id"]
    one = client.get(url(project, experiment, f"/{record['id']}")).json()
    assert one["file_name"] == "tiny-cnn-best-onnx.onnx"


def test_export_request_errors_say_what_is_valid(
    client: TestClient, session: Session, project: Project
) -> None:
    experiment = make_experiment(session, project)
    assert_api_error(
        client.post(url(project, experiment), json={"format": "tflite"}), 422, "invalid_format"
    )
    error = assert_api_error(
        client.post(url(project, experiment), json={"format": "onnx", "opset": 9}),
        422,
        "invalid_opset",
    )
    assert "13-20" in error["message"]
    error = assert_api_error(
        client.post(url(project, experiment), json={"checkpoint": "last"}),
        409,
        "checkpoint_missing",
    )
    assert error["details"]["available"] == ["best"]
    untrained = make_experiment(session, project, name="untrained", checkpoints={})
    assert_api_error(client.post(url(project, untrained), json={}), 409, "checkpoint_missing")
    other = make_project(session, name="Other")
    assert_api_error(
        client.post(f"/api/projects/{other.id}/experiments/{experiment.id}/exports", json={}),
        404,
        "experiment_not_found",
    )
    assert_api_error(client.get(url(project, experiment, "/999")), 404, "export_not_found")


def test_export_of_unsupported_task_answers_409(
    client: TestClient, session: Session, sketch_task: str
) -> None:
    project = make_project(session, name="Sketches", task_type=sketch_task)
    experiment = make_experiment(session, project)
    assert_api_error(client.post(url(project, experiment), json={}), 409, "export_unsupported")


def test_unfinished_export_cannot_be_downloaded_or_deleted(
    client: TestClient, session: Session, project: Project
) -> None:
    experiment = make_experiment(session, project)
    record = client.post(url(project, experiment), json={}).json()["export"]
    assert_api_error(
        client.get(url(project, experiment, f"/{record['id']}/download")), 409, "export_not_ready"
    )
    assert_api_error(
        client.delete(url(project, experiment, f"/{record['id']}")), 409, "export_running"
    )


def test_export_whose_worker_died_reads_as_failed_and_can_be_deleted(
    client: TestClient, session: Session, project: Project
) -> None:
    experiment = make_experiment(session, project)
    body = client.post(url(project, experiment), json={}).json()
    job = session.get(Job, body["job"]["id"])
    assert job is not None
    job.status = "running"
    session.add(job)
    session.commit()
    finish_job(session, job_id=job.id, status=JobStatus.failed, error="worker exited with code 9")
    record = client.get(url(project, experiment, f"/{body['export']['id']}")).json()
    assert record["status"] == "failed" and record["valid"] is False
    assert "code 9" in record["validation"]["error"]
    assert client.delete(url(project, experiment, f"/{body['export']['id']}")).status_code == 204
    assert client.get(url(project, experiment)).json()["total"] == 0


def test_tasks_report_export_and_predict_for_classification(client: TestClient) -> None:
    tasks = {t["key"]: t for t in client.get("/api/tasks").json()["items"]}
    assert {"export", "predict"} <= set(tasks["classification"]["available"])


def png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def test_predict_without_a_model_or_files_answers_4xx(
    client: TestClient, session: Session, project: Project
) -> None:
    predict = f"/api/projects/{project.id}/predict"
    assert_api_error(
        client.post(predict, files=[("files", ("a.png", png(), "image/png"))]), 404, "no_model"
    )
    assert_api_error(client.post(predict, data={"export_id": "1"}), 422, "validation_error")
    experiment = make_experiment(session, project)
    script = Export(
        experiment_id=experiment.id,
        checkpoint="best",
        format="torchscript",
        status="completed",
        path="x.pt",
        valid=True,
        finished_at=utcnow(),
    )
    session.add(script)
    session.commit()
    assert_api_error(
        client.post(
            predict,
            data={"export_id": str(script.id)},
            files=[("files", ("a.png", png(), "image/png"))],
        ),
        409,
        "export_not_onnx",
    )
    assert_api_error(
        client.post(
            predict, data={"export_id": "12345"}, files=[("files", ("a.png", png(), "image/png"))]
        ),
        404,
        "export_not_found",
    )
    too_many = [("files", (f"{i}.png", png(), "image/png")) for i in range(65)]
    assert_api_error(client.post(predict, files=too_many), 413, "too_many_files")
