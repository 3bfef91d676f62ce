"""The Export page and its HTMX fragments (rendering and errors; jobs run in tests/jobs)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.db import utcnow
from app.models import Export, Project
from tests.api.test_exports import make_experiment

HTMX = {"HX-Request": "true"}


def test_export_page_without_trained_experiments_shows_empty_states(
    client: TestClient, project: Project
) -> None:
    page = client.get(f"/projects/{project.id}/export")
    assert page.status_code == 200
    assert "No trained experiment yet" in page.text
    assert 'data-testid="exports-empty"' in page.text
    assert 'data-testid="try-empty"' in page.text
    assert f'href="/projects/{project.id}/export"' in page.text  # in the project nav


def test_htmx_export_form_queues_one_job_per_format(
    client: TestClient, session: Session, project: Project
) -> None:
    experiment = make_experiment(session, project)
    page = client.get(f"/projects/{project.id}/export").text
    assert 'data-testid="export-form"' in page and "tiny cnn" in page
    response = client.post(
        f"/projects/{project.id}/exports",
        data={
            "experiment_id": str(experiment.id),
            "checkpoint": "best",
            "formats": ["onnx", "torchscript"],
            "opset": "17",
        },
        headers=HTMX,
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section class="card" id="export-list"')
    assert response.text.count('data-testid="export-item"') == 2
    assert "job-live" in response.text  # live job cards while queued
    exports = client.get(f"/api/projects/{project.id}/experiments/{experiment.id}/exports").json()
    assert sorted(x["format"] for x in exports["items"]) == ["onnx", "torchscript"]
    first = exports["items"][0]["id"]
    # the item poller does not swap while the state is unchanged (keeps the SSE card alive)
    same = client.get(f"/projects/{project.id}/exports/{first}/item?known=queued", headers=HTMX)
    assert same.status_code == 204
    changed = client.get(f"/projects/{project.id}/exports/{first}/item?known=running", headers=HTMX)
    assert changed.status_code == 200 and f'id="export-{first}"' in changed.text


def test_export_form_errors_render_in_place(
    client: TestClient, session: Session, project: Project
) -> None:
    experiment = make_experiment(session, project)
    headers = {**HTMX, "X-Error-Target": "#export-error"}
    none = client.post(
        f"/projects/{project.id}/exports",
        data={"experiment_id": str(experiment.id), "checkpoint": "best"},
        headers=headers,
    )
    assert none.status_code == 400 and none.headers["HX-Retarget"] == "#export-error"
    assert "at least one format" in none.text
    missing = client.post(
        f"/projects/{project.id}/exports",
        data={"experiment_id": str(experiment.id), "checkpoint": "last", "formats": "onnx"},
        headers=headers,
    )
    assert missing.status_code == 409 and 'data-code="checkpoint_missing"' in missing.text


def test_completed_export_shows_parity_report_download_and_try_panel(
    client: TestClient, session: Session, project: Project
) -> None:
    experiment = make_experiment(session, project, name="digits <b>cnn</b>")
    export = Export(
        experiment_id=experiment.id,
        checkpoint="best",
        format="onnx",
        options={"opset": 17},
        status="completed",
        path="projects/1/experiments/1/exports/1-onnx.onnx",
        bytes=2048,
        valid=True,
        validation={
            "samples": 20,
            "subset": "test",
            "max_abs_diff": 2.4e-7,
            "mean_abs_diff": 5e-8,
            "top1_agreement": 1.0,
            "metric": "accuracy",
            "metric_checkpoint": 0.85,
            "metric_export": 0.85,
            "metric_delta": 0.0,
            "runtime": "onnxruntime",
            "checks": [
                {"name": "max_abs_diff", "value": 2.4e-7, "op": "<=", "limit": 1e-4, "passed": True}
            ],
        },
        meta={"classes": ["0", "1"], "preprocess": {"resize": [32, 32]}},
        finished_at=utcnow(),
    )
    session.add(export)
    session.commit()
    page = client.get(f"/projects/{project.id}/export").text
    assert 'data-testid="parity-report"' in page and "2.4e-07" in page
    assert 'data-testid="export-valid"' in page
    assert f"/exports/{export.id}/download" in page
    assert "digits-b-cnn-b-best-onnx.onnx" in page  # safe download name
    assert "<b>cnn</b>" not in page  # user strings are escaped
    assert 'data-testid="try-form"' in page
