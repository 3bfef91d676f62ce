from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

HTMX = {"HX-Request": "true"}


def test_projects_page_shows_empty_state_and_every_task(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'data-testid="empty-projects"' in page.text
    for key in ("classification", "detection", "oriented_detection"):
        assert f'value="{key}"' in page.text


def test_pages_load_only_vendored_scripts(client: TestClient) -> None:
    page = client.get("/").text
    sources = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert sources and all(src.startswith("/static/") for src in sources)
    for src in sources:
        assert client.get(src).status_code == 200
    assert "http://" not in "".join(sources) and "https://" not in "".join(sources)


def test_htmx_create_opens_the_new_project(client: TestClient) -> None:
    response = client.post(
        "/projects", data={"name": "Leaves", "task_type": "segmentation"}, headers=HTMX
    )
    assert response.status_code == 204
    project = client.get("/api/projects").json()["items"][0]
    assert response.headers["HX-Redirect"] == f"/projects/{project['id']}"
    page = client.get(response.headers["HX-Redirect"]).text
    assert 'data-testid="project-next-step"' in page and "import data" in page


def test_htmx_create_errors_name_the_field_in_plain_words(client: TestClient) -> None:
    response = client.post(
        "/projects",
        data={"name": "  ", "task_type": "classification"},
        headers={**HTMX, "X-Error-Target": "#create-error"},
    )
    assert response.status_code == 422
    assert "Name is required." in response.text and "String should" not in response.text
    assert '"field": "name"' in response.text  # data-fields: the page puts it beside the field


def test_form_create_without_js_redirects_to_the_project(client: TestClient) -> None:
    response = client.post(
        "/projects", data={"name": "NoJS", "task_type": "regression"}, follow_redirects=False
    )
    assert response.status_code == 303
    assert re.fullmatch(r"/projects/\d+", response.headers["location"])


def test_htmx_errors_come_back_as_fragments_for_the_named_region(client: TestClient) -> None:
    client.post("/projects", data={"name": "Dup", "task_type": "classification"}, headers=HTMX)
    response = client.post(
        "/projects",
        data={"name": "dup", "task_type": "classification"},
        headers={**HTMX, "X-Error-Target": "#create-error"},
    )
    assert response.status_code == 409
    assert response.headers["HX-Retarget"] == "#create-error"
    assert 'role="alert"' in response.text and "already exists" in response.text
    empty = client.post("/projects", data={"name": "", "task_type": "classification"}, headers=HTMX)
    assert empty.status_code == 422 and "name" in empty.text


def test_inline_rename_returns_the_card(client: TestClient) -> None:
    pid = client.post("/api/projects", json={"name": "Old", "task_type": "anomaly"}).json()["id"]
    response = client.patch(f"/projects/{pid}", data={"name": "New"}, headers=HTMX)
    assert response.status_code == 200
    assert f'id="project-{pid}"' in response.text and ">New</a>" in response.text


def test_delete_from_the_list_returns_the_updated_list(client: TestClient) -> None:
    pid = client.post("/api/projects", json={"name": "Gone", "task_type": "anomaly"}).json()["id"]
    response = client.delete(f"/projects/{pid}", headers=HTMX)
    assert response.status_code == 200
    assert "Gone" not in response.text and 'data-testid="empty-projects"' in response.text


def test_project_page_and_missing_project(client: TestClient) -> None:
    pid = client.post("/api/projects", json={"name": "P", "task_type": "detection"}).json()["id"]
    page = client.get(f"/projects/{pid}")
    assert page.status_code == 200
    assert "Object detection" in page.text and "Overview" in page.text
    missing = client.get("/projects/999")
    assert missing.status_code == 404 and "does not exist" in missing.text


@pytest.mark.parametrize(
    "name", ["<script>alert(1)</script>", '" onmouseover="x', "<img src=x onerror=alert(1)>"]
)
def test_hostile_names_are_escaped_everywhere(client: TestClient, name: str) -> None:
    pid = client.post(
        "/api/projects", json={"name": name, "task_type": "classification", "description": name}
    ).json()["id"]
    for url in ("/", f"/projects/{pid}", "/projects/list"):
        html = client.get(url).text
        assert name not in html, url
        assert "&lt;" in html or "&#34;" in html or "&quot;" in html, url
    card = client.patch(f"/projects/{pid}", data={"name": name + "!"}, headers=HTMX).text
    assert name not in card


def test_jobs_pages_and_card(client: TestClient, session) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import make_job, make_project

    owner = make_project(session, name="Owner <i>of</i> jobs")
    job = make_job(session, title="Counting <b>things</b>", project_id=owner.id)
    listing = client.get("/jobs").text
    assert "Counting &lt;b&gt;" in listing
    assert 'data-testid="job-project">· Owner &lt;i&gt;of&lt;/i&gt; jobs<' in listing
    page = client.get(f"/jobs/{job.id}")
    assert page.status_code == 200
    assert f'sse-connect="/jobs/{job.id}/card-stream"' in page.text
    card = client.get(f"/jobs/{job.id}/card", headers=HTMX).text
    assert 'data-status="queued"' in card and "every 2s" in card
    cancelled = client.post(f"/jobs/{job.id}/cancel", headers=HTMX).text
    assert 'data-status="cancelled"' in cancelled and "every 2s" not in cancelled


def test_card_stream_sends_rendered_cards_and_closes(client: TestClient, session) -> None:  # type: ignore[no-untyped-def]
    from app.services.jobs import cancel_job
    from tests.factories import make_job

    job = make_job(session)
    cancel_job(session, job_id=job.id)
    text = client.get(f"/jobs/{job.id}/card-stream").text
    assert "event: card" in text and 'data: <div class="job-card' in text
    assert "event: done" in text
