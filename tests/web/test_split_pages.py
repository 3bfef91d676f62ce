"""Split page over HTTP: form, preview partial with chart data, create, delete, errors in place."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Experiment, Project
from app.storage import Storage
from tests.factories import make_digits, make_image

HTMX = {"HX-Request": "true"}
FORM = {
    "name": "main",
    "strategy": "stratified",
    "ratio_train": "80",
    "ratio_val": "10",
    "ratio_test": "10",
    "seed": "42",
    "k": "5",
    "test_percent": "0",
    "near_duplicates": "group",
}


def test_page_lists_strategies_attributes_and_nav(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    assert project.id is not None
    make_image(session, storage, project.id, labels=["a"], attributes={"site": "x"})
    page = client.get(f"/projects/{project.id}/splits")
    assert page.status_code == 200
    for key in (
        "stratified",
        "stratified_kfold",
        "group_kfold",
        "leave_one_group_out",
        "predefined",
    ):
        assert f'value="{key}"' in page.text
    assert 'value="site"' in page.text and "site (1 values on 1 images)" in page.text
    assert f'href="/projects/{project.id}/splits"' in page.text  # the subnav entry
    assert 'data-testid="no-splits"' in page.text
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(src).status_code == 200


def test_preview_partial_has_counts_chart_and_warnings(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    assert project.id is not None
    make_digits(session, storage, project.id, per_class=3)
    response = client.post(f"/projects/{project.id}/splits/preview", data=FORM, headers=HTMX)
    assert response.status_code == 200
    assert response.text.count('data-testid="preview-subset"') == 3
    match = re.search(r'data-split-chart="([^"]+)"', response.text)
    assert match is not None
    chart = json.loads(match.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert chart["labels"] == [str(d) for d in range(10)] and len(chart["datasets"]) == 3
    # 3 images per class cannot fill 80/10/10 with every class: the preview says so
    assert 'data-code="class_missing"' in response.text


def test_create_then_delete_and_in_use_cannot_be_deleted(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    assert project.id is not None
    make_digits(session, storage, project.id, per_class=4)
    created = client.post(f"/projects/{project.id}/splits", data=FORM, headers=HTMX)
    assert created.status_code == 200 and created.headers["HX-Trigger"] == "split-created"
    assert 'data-testid="lock-badge"' in created.text
    assert f"/projects/{project.id}/dataset?split_id=" in created.text
    assert f'href="/projects/{project.id}/training" data-testid="next-train"' in created.text
    split_id = int(re.findall(r'data-split-id="(\d+)"', created.text)[0])
    again = client.post(f"/projects/{project.id}/splits", data=FORM, headers=HTMX)
    assert again.status_code == 409 and 'data-code="split_exists"' in again.text
    session.add(Experiment(project_id=project.id, name="e", split_id=split_id))
    session.commit()
    page = client.get(f"/projects/{project.id}/splits").text
    assert "in use by an experiment" in page
    refused = client.delete(f"/projects/{project.id}/splits/{split_id}", headers=HTMX)
    assert refused.status_code == 409 and 'data-code="split_in_use"' in refused.text
    other = client.post(
        f"/projects/{project.id}/splits", data={**FORM, "name": "spare"}, headers=HTMX
    )
    spare_id = max(int(i) for i in re.findall(r'data-split-id="(\d+)"', other.text))
    gone = client.delete(f"/projects/{project.id}/splits/{spare_id}", headers=HTMX)
    assert gone.status_code == 200 and f'data-split-id="{spare_id}"' not in gone.text


def test_form_errors_come_back_in_place(client: TestClient, project: Project) -> None:
    response = client.post(
        f"/projects/{project.id}/splits/preview",
        data={**FORM, "strategy": "group"},
        headers={**HTMX, "X-Error-Target": "#split-form-error"},
    )
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#split-form-error"
    assert "group_attribute" in response.text
    response = client.post(
        f"/projects/{project.id}/splits/preview", data={**FORM, "ratio_val": "ten"}, headers=HTMX
    )
    assert response.status_code == 422 and "not a number" in response.text


def test_kfold_and_leave_one_group_out_previews_from_the_form(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    assert project.id is not None
    for i in range(24):
        make_image(
            session, storage, project.id, labels=[f"c{i % 2}"], attributes={"site": f"s{i % 3}"}
        )
    kfold = client.post(
        f"/projects/{project.id}/splits/preview",
        data={**FORM, "strategy": "group_kfold", "k": "3", "group_attribute": "site"},
        headers=HTMX,
    )
    assert kfold.status_code == 200, kfold.text
    assert kfold.text.count('data-testid="preview-subset"') == 6  # train + val for 3 folds
    assert "val fold 2" in kfold.text
    logo = client.post(
        f"/projects/{project.id}/splits/preview",
        data={**FORM, "strategy": "leave_one_group_out", "group_attribute": "site"},
        headers=HTMX,
    )
    assert logo.status_code == 200, logo.text
    assert logo.text.count("held out: s") == 3 and logo.text.count("data-split-chart") == 3
