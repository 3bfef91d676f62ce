"""The dataset page and image view: grid, filters in the URL, htmx partials, class edits."""

from __future__ import annotations

import re

import numpy as np
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Project
from app.storage import Storage
from tests.factories import (
    make_annotation,
    make_class,
    make_image,
    make_mask,
    make_project,
    make_split,
)

HTMX = {"HX-Request": "true"}


def test_dataset_page_lists_thumbnails_and_filters_from_the_url(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    cats = [
        make_image(session, storage, pid, labels=["cat"], original_name=f"cat{i}.png")
        for i in range(3)
    ]
    dogs = [
        make_image(session, storage, pid, labels=["dog"], original_name=f"dog{i}.png")
        for i in range(2)
    ]
    page = client.get(f"/projects/{pid}/dataset")
    assert page.status_code == 200
    assert page.text.count('data-testid="thumb"') == 5
    assert 'loading="lazy"' in page.text
    assert re.search(rf'href="/projects/{pid}/dataset"\s+class="active"', page.text)
    cat = make_class(session, pid, "cat")
    filtered = client.get(f"/projects/{pid}/dataset", params={"class_id": cat.id})
    assert filtered.text.count('data-testid="thumb"') == 3
    assert "dog0.png" not in filtered.text
    split = make_split(session, pid, cats + dogs, ratios=(0.6, 0.2, 0.2))
    test = client.get(f"/projects/{pid}/dataset?split_id={split.id}&subset=test")
    assert test.status_code == 200 and test.text.count('data-testid="thumb"') == 1


def test_htmx_filter_returns_the_grid_partial_and_pages(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    for i in range(5):
        make_image(session, storage, pid, labels=["a"], original_name=f"img{i}.png")
    response = client.get(
        f"/projects/{pid}/dataset",
        params={"page_size": 2, "page": 2, "class_id": "", "q": ""},
        headers={**HTMX, "HX-Target": "image-grid"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="image-grid"')
    assert "<html" not in response.text
    assert "img2.png" in response.text and "img0.png" not in response.text
    assert "page 2 of 3" in response.text
    assert f"/projects/{pid}/dataset?page_size=2&amp;page=3" in response.text
    assert response.headers["HX-Push-Url"] == f"/projects/{pid}/dataset?page_size=2&page=2"


def test_bad_filters_answer_an_in_place_error(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    response = client.get(
        f"/projects/{project.id}/dataset",
        params={"subset": "test"},
        headers={**HTMX, "HX-Target": "image-grid", "X-Error-Target": "#grid-error"},
    )
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#grid-error"
    assert "subset needs split_id" in response.text


def test_empty_dataset_shows_the_empty_state_for_every_task(
    client: TestClient, session: Session
) -> None:
    for task in (
        "classification",
        "detection",
        "segmentation",
        "instance_segmentation",
        "anomaly",
        "regression",
        "oriented_detection",
    ):
        project = make_project(session, task_type=task)
        page = client.get(f"/projects/{project.id}/dataset")
        assert page.status_code == 200, (task, page.text[:500])
        assert 'data-testid="empty-dataset"' in page.text
        stats = client.get(f"/projects/{project.id}/dataset/stats")
        assert stats.status_code == 200 and 'data-testid="stats"' in stats.text


def test_stats_partial_has_chart_data_and_duplicates(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    same = np.zeros((8, 8, 3), np.uint8)
    make_image(session, storage, pid, same, labels=["<b>cat</b>"])
    make_image(session, storage, pid, same, labels=["dog"])
    stats = client.get(f"/projects/{pid}/dataset/stats").text
    assert 'data-testid="class-chart"' in stats
    assert "&lt;b&gt;cat&lt;/b&gt;" in stats or "\\u003cb\\u003ecat" in stats
    assert "<b>cat</b>" not in stats
    assert stats.count('data-testid="exact-duplicate-group"') == 1


def test_image_page_draws_every_overlay_kind(
    client: TestClient, session: Session, storage: Storage
) -> None:
    project = make_project(session, task_type="detection")
    pid = project.id
    assert pid is not None
    image = make_image(session, storage, pid, original_name="street.png")
    car = make_class(session, pid, "car", color="#ff0000")
    background = make_class(session, pid, "background", color="#000000")
    make_annotation(session, image, "bbox", {"x": 2, "y": 3, "w": 10, "h": 8}, car)
    make_annotation(
        session,
        image,
        "polygon",
        {"rings": [[[0, 0], [9, 0], [9, 9]], [[1, 1], [2, 1], [2, 2]]]},
        car,
    )
    make_annotation(session, image, "obb", {"cx": 16, "cy": 16, "w": 8, "h": 4, "angle": 90}, car)
    make_annotation(session, image, "label", {}, background)
    make_annotation(session, image, "bbox", {"x": "bad"}, car)  # malformed: skipped, not a 500
    make_mask(session, storage, image, np.ones((32, 32), np.uint8))
    page = client.get(f"/projects/{pid}/dataset/images/{image.id}?class_id={car.id}")
    assert page.status_code == 200, page.text[:1000]
    text = page.text
    assert text.count('data-testid="ov-bbox"') == 1
    assert 'x="2.0" y="3.0" width="10.0" height="8.0"' in text
    assert (
        'data-testid="ov-polygon"' in text
        and "M0.00,0.00 L9.00,0.00 L9.00,9.00 Z M1.00,1.00" in text
    )
    assert 'points="18.00,12.00 18.00,20.00 14.00,20.00 14.00,12.00"' in text
    assert 'data-testid="ov-mask"' in text
    assert f"/api/projects/{pid}/images/{image.id}/annotations/" in text
    assert f'href="/projects/{pid}/dataset?class_id={car.id}"' in text  # back keeps the filters
    assert f'"hidden": [{background.id}]' in text  # background starts hidden


def test_class_panel_rename_recolor_and_errors(
    client: TestClient, session: Session, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    cat = make_class(session, pid, "cat")
    make_class(session, pid, "dog")
    response = client.patch(
        f"/projects/{pid}/dataset/classes/{cat.id}",
        data={"name": "kitten", "color": "#00aa00", "parent_id": ""},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "classes-changed"
    assert 'id="class-panel"' in response.text and "kitten" in response.text
    session.refresh(cat)
    assert cat.name == "kitten" and cat.color == "#00aa00" and cat.parent_id is None
    clash = client.patch(
        f"/projects/{pid}/dataset/classes/{cat.id}",
        data={"name": "Dog"},
        headers={**HTMX, "X-Error-Target": "#class-error"},
    )
    assert clash.status_code == 409 and clash.headers["HX-Retarget"] == "#class-error"
    assert "already exists" in clash.text


def test_hostile_names_stay_text_on_every_dataset_view(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    hostile = "<img src=x onerror=alert(1)>'\""
    image = make_image(
        session,
        storage,
        pid,
        labels=[hostile],
        original_name=hostile,
        attributes={hostile: hostile},
    )
    box_class = make_class(session, pid, hostile)
    make_annotation(session, image, "bbox", {"x": 1, "y": 1, "w": 2, "h": 2}, box_class)
    for url in (
        f"/projects/{pid}/dataset",
        f"/projects/{pid}/dataset/stats",
        f"/projects/{pid}/dataset/images/{image.id}",
        f"/projects/{pid}/dataset/classes",
    ):
        text = client.get(url).text
        assert "<img src=x" not in text, url
        assert "&lt;img src=x onerror=alert(1)&gt;" in text or "\\u003cimg" in text, url


def test_near_duplicate_panel_names_one_threshold(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    """A chain a-b-c (6 bits apart each, a and c 12 apart) is one group at threshold 6; the
    panel says "within 6 bits" and shows no second figure that reads like another threshold."""
    assert project.id is not None
    images = [make_image(session, storage, project.id, original_name=f"{n}.png") for n in "abc"]
    for image, value in zip(images, (0, 0b111111, 0b111111_111111), strict=True):
        image.phash = f"{value:016x}"
        session.add(image)
    session.commit()
    panel = client.get(f"/projects/{project.id}/dataset/stats").text
    assert 'data-testid="near-duplicate-group"' in panel
    assert "within 6 bits of another image in its group" in panel
    assert "12 bits" not in panel and "≤" not in panel
