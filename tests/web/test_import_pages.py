"""The import dialog's HTMX endpoints: form, analyze, start → job card + report poller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Project
from app.storage import Storage
from tests.importers.builders import class_folders, run_now, zip_folder

HTMX = {"HX-Request": "true"}


def test_empty_project_overview_offers_the_import_dialog(
    client: TestClient, project: Project
) -> None:
    page = client.get(f"/projects/{project.id}").text
    assert 'data-testid="import-dialog"' in page
    form = client.get(f"/projects/{project.id}/imports/dialog", headers=HTMX).text
    assert 'value="folders"' in form and 'value="csv"' in form
    assert 'data-testid="import-sample-digits"' in form
    assert "STUDIO_IMPORT_ROOTS" in form  # folders are off in the test settings


def test_analyze_start_and_report_fragments(
    client: TestClient,
    session: Session,
    engine: Any,
    storage: Storage,
    project: Project,
    tmp_path: Path,
) -> None:
    archive = zip_folder(class_folders(tmp_path / "src", {"a": 2, "b": 2}), tmp_path / "d.zip")
    with archive.open("rb") as handle:
        analysis = client.post(
            f"/projects/{project.id}/imports/analyze",
            files={"file": ("d.zip", handle, "application/zip")},
            data={"source": "upload", "format": ""},
            headers=HTMX,
        )
    assert analysis.status_code == 200, analysis.text
    assert 'data-testid="analysis-images">4<' in analysis.text
    with archive.open("rb") as handle:
        started = client.post(
            f"/projects/{project.id}/imports",
            files={"file": ("d.zip", handle, "application/zip")},
            data={"source": "upload"},
            headers=HTMX,
        )
    assert started.status_code == 200 and 'class="job-live"' in started.text
    import re

    report_url = re.search(r'hx-get="(/projects/\d+/imports/\d+/report)\?started=1"', started.text)
    assert report_url is not None
    pending = client.get(report_url.group(1), headers=HTMX).text
    assert 'data-status="queued"' in pending and 'hx-trigger="every 1s"' in pending
    run_now(engine, storage, int(report_url.group(1).split("/")[-2]))
    done = client.get(report_url.group(1), headers=HTMX).text
    assert 'data-status="succeeded"' in done and 'data-testid="report-images">4<' in done
    assert "hx-trigger" not in done
    below_card = client.get(report_url.group(1) + "?started=1", headers=HTMX).text
    assert 'data-status="succeeded"' in below_card


def test_missing_file_is_shown_in_place(client: TestClient, project: Project) -> None:
    response = client.post(
        f"/projects/{project.id}/imports",
        data={"source": "upload"},
        headers={**HTMX, "X-Error-Target": "#import-error"},
    )
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "#import-error"
    assert "Choose a .zip file" in response.text
