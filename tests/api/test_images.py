"""Images API: list filters and sorts, details with annotations, files and thumbnails."""

from __future__ import annotations

import io

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlmodel import Session

from app.models import Image, Project
from app.storage import Storage
from tests.factories import (
    make_annotation,
    make_class,
    make_image,
    make_mask,
    make_project,
    make_split,
)
from tests.helpers import assert_api_error


def _names(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return [item["original_name"] for item in response.json()["items"]]


def _dataset(session: Session, storage: Storage, project: Project) -> list[Image]:
    assert project.id is not None
    pid = project.id
    rng = np.random.default_rng(0)
    return [
        make_image(
            session,
            storage,
            pid,
            rng.integers(0, 256, (32, 32, 3), np.uint8),
            labels=["cat"],
            original_name="b_cat.png",
            attributes={"source": "cam1"},
        ),
        make_image(
            session,
            storage,
            pid,
            rng.integers(0, 256, (48, 40, 3), np.uint8),
            labels=["dog"],
            original_name="a_dog.png",
            attributes={"source": "cam2"},
        ),
        make_image(
            session,
            storage,
            pid,
            rng.integers(0, 256, (64, 64, 3), np.uint8),
            labels=["cat", "dog"],
            original_name="c_both.PNG",
            attributes={"source": "cam1"},
        ),
        make_image(
            session,
            storage,
            pid,
            rng.integers(0, 256, (16, 16, 3), np.uint8),
            original_name="d_none_100%.png",
        ),
    ]


def test_list_is_paginated_and_sorted_by_name_by_default(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    _dataset(session, storage, project)
    first = client.get(f"/api/projects/{project.id}/images", params={"page_size": 3})
    body = first.json()
    assert body["total"] == 4 and body["page"] == 1 and body["page_size"] == 3
    assert _names(first) == ["a_dog.png", "b_cat.png", "c_both.PNG"]
    second = client.get(f"/api/projects/{project.id}/images", params={"page_size": 3, "page": 2})
    assert _names(second) == ["d_none_100%.png"]
    item = first.json()["items"][0]
    assert item["width"] == 40 and item["height"] == 48 and item["annotation_count"] == 1
    assert item["thumbnail_url"].startswith(f"/api/projects/{project.id}/images/{item['id']}/")


def test_filter_by_class_annotation_attribute_and_name(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    _dataset(session, storage, project)
    cat = make_class(session, project.id, "cat")  # type: ignore[arg-type]
    url = f"/api/projects/{project.id}/images"
    assert _names(client.get(url, params={"class_id": cat.id})) == ["b_cat.png", "c_both.PNG"]
    assert _names(client.get(url, params={"annotated": "false"})) == ["d_none_100%.png"]
    assert len(_names(client.get(url, params={"annotated": "true"}))) == 3
    assert _names(client.get(url, params={"attr": "source=cam1"})) == ["b_cat.png", "c_both.PNG"]
    assert _names(client.get(url, params={"attr": "source=cam1", "q": "BOTH"})) == ["c_both.PNG"]
    # LIKE wildcards in the search are literal characters
    assert _names(client.get(url, params={"q": "100%"})) == ["d_none_100%.png"]
    assert _names(client.get(url, params={"q": "_"})) == [
        "a_dog.png",
        "b_cat.png",
        "c_both.PNG",
        "d_none_100%.png",
    ]
    assert _names(client.get(url, params={"q": "%"})) == ["d_none_100%.png"]


def test_attribute_filter_matches_numbers_and_booleans_as_written(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    assert project.id is not None
    make_image(
        session, storage, project.id, attributes={"count": 3, "ok": True}, original_name="n.png"
    )
    make_image(
        session,
        storage,
        project.id,
        attributes={"count": "3x", "tags": ["a"]},
        original_name="m.png",
    )
    url = f"/api/projects/{project.id}/images"
    assert _names(client.get(url, params={"attr": "count=3"})) == ["n.png"]
    assert _names(client.get(url, params={"attr": "ok=true"})) == ["n.png"]
    assert _names(client.get(url, params={"attr": "count=3x"})) == ["m.png"]
    assert (
        client.get(url, params={"attr": "tags=a"}).json()["total"] == 0
    )  # lists are not filterable


def test_sorts_by_size_date_and_class(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    images = _dataset(session, storage, project)
    url = f"/api/projects/{project.id}/images"
    by_size = sorted(images, key=lambda i: (i.bytes, i.id))
    assert _names(client.get(url, params={"sort": "size"})) == [i.original_name for i in by_size]
    assert _names(client.get(url, params={"sort": "-size"}))[0] == by_size[-1].original_name
    assert _names(client.get(url, params={"sort": "date"}))[0] == "b_cat.png"
    assert _names(client.get(url, params={"sort": "-date"}))[0] == "d_none_100%.png"
    # cat has index 0, dog index 1; the image with both sorts by its first class; none last
    assert _names(client.get(url, params={"sort": "class"})) == [
        "b_cat.png",
        "c_both.PNG",
        "a_dog.png",
        "d_none_100%.png",
    ]
    invalid = client.get(url, params={"sort": "colour"})
    assert_api_error(invalid, 422, "validation_error")


def test_filter_by_split_and_subset(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    images = _dataset(session, storage, project)
    split = make_split(session, project.id, images, ratios=(0.5, 0.25, 0.25))  # type: ignore[arg-type]
    url = f"/api/projects/{project.id}/images"
    train = client.get(url, params={"split_id": split.id, "subset": "train"}).json()
    test = client.get(url, params={"split_id": split.id, "subset": "test"}).json()
    assert train["total"] == 2 and test["total"] == 1
    assert client.get(url, params={"split_id": split.id}).json()["total"] == 4
    assert_api_error(client.get(url, params={"subset": "test"}), 422, "subset_needs_split")
    assert_api_error(
        client.get(url, params={"split_id": split.id, "subset": "holdout"}), 422, "invalid_subset"
    )
    assert_api_error(client.get(url, params={"split_id": 999}), 404, "split_not_found")


def test_filters_from_another_project_are_404_and_bad_attr_is_422(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    other = make_project(session)
    foreign = make_class(session, other.id, "cat")  # type: ignore[arg-type]
    url = f"/api/projects/{project.id}/images"
    assert_api_error(client.get(url, params={"class_id": foreign.id}), 404, "class_not_found")
    assert_api_error(client.get(url, params={"attr": "nokey"}), 422, "invalid_attribute_filter")
    assert_api_error(client.get("/api/projects/999/images"), 404, "project_not_found")
    assert_api_error(client.get(url, params={"page_size": 501}), 422, "validation_error")


def test_detail_has_annotations_with_class_names_and_splits(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    image = make_image(session, storage, project.id, labels=[])  # type: ignore[arg-type]
    car = make_class(session, project.id, "car", color="#ff0000")  # type: ignore[arg-type]
    make_annotation(
        session,
        image,
        "bbox",
        {"x": 1, "y": 2, "w": 10, "h": 5},
        car,
        attributes={"difficult": True},
    )
    make_annotation(session, image, "polygon", {"points": [[0, 0], [5, 0], [5, 5]]}, car)
    make_annotation(session, image, "obb", {"cx": 8, "cy": 8, "w": 6, "h": 3, "angle": 30}, car)
    make_mask(session, storage, image, np.zeros((32, 32), np.uint8))
    split = make_split(session, project.id, [image], ratios=(1.0, 0.0, 0.0))  # type: ignore[arg-type]
    body = client.get(f"/api/projects/{project.id}/images/{image.id}").json()
    kinds = [a["kind"] for a in body["annotations"]]
    assert kinds == ["bbox", "polygon", "obb", "mask"]
    box = body["annotations"][0]
    assert box["class_name"] == "car" and box["color"] == "#ff0000"
    assert box["geometry"] == {"x": 1, "y": 2, "w": 10, "h": 5}
    assert box["attributes"] == {"difficult": True}
    assert body["annotations"][3]["overlay_url"].endswith("/overlay")
    assert body["subsets"] == {str(split.id): "train"}
    assert body["class_ids"] == [car.id]
    other = make_project(session)
    assert_api_error(
        client.get(f"/api/projects/{other.id}/images/{image.id}"), 404, "image_not_found"
    )


def test_file_has_etag_and_answers_304(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    image = make_image(session, storage, project.id)  # type: ignore[arg-type]
    url = f"/api/projects/{project.id}/images/{image.id}/file"
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == f'"{image.sha256}"'
    assert "max-age" in response.headers["cache-control"]
    assert response.content == storage.resolve(image.stored_path).read_bytes()
    again = client.get(url, headers={"If-None-Match": f'W/"x", "{image.sha256}"'})
    assert again.status_code == 304 and again.content == b""
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_thumbnail_is_made_once_stored_and_cached(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (600, 400, 3), np.uint8)
    image = make_image(session, storage, project.id, pixels)  # type: ignore[arg-type]
    assert image.thumb_path is None
    url = f"/api/projects/{project.id}/images/{image.id}/thumbnail"
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    thumb = PILImage.open(io.BytesIO(response.content))
    assert thumb.size == (171, 256)
    session.refresh(image)
    assert image.thumb_path and storage.resolve(image.thumb_path).is_file()
    stored = image.thumb_path
    second = client.get(url)
    assert second.content == response.content
    session.refresh(image)
    assert image.thumb_path == stored  # not made again
    etag = response.headers["etag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_missing_file_is_404_not_500(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    image = make_image(session, storage, project.id)  # type: ignore[arg-type]
    storage.resolve(image.stored_path).unlink()
    base = f"/api/projects/{project.id}/images/{image.id}"
    assert_api_error(client.get(f"{base}/file"), 404, "image_file_missing")
    assert_api_error(client.get(f"{base}/thumbnail"), 404, "image_file_missing")


def test_mask_overlay_colors_classes_and_leaves_ignore_and_background_clear(
    client: TestClient, session: Session, storage: Storage
) -> None:
    project = make_project(session, task_type="segmentation")
    pid = project.id
    assert pid is not None
    make_class(session, pid, "background", color="#000000")
    road = make_class(session, pid, "road", color="#ff0000")
    tree = make_class(session, pid, "tree", color="#00ff00")
    image = make_image(session, storage, pid)
    values = np.zeros((32, 32), np.uint8)
    values[:, 8:16] = 1
    values[:, 16:24] = 2
    values[:, 24:] = 255
    mask = make_mask(session, storage, image, values)
    url = f"/api/projects/{pid}/images/{image.id}/annotations/{mask.id}/overlay"
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    rgba = np.asarray(PILImage.open(io.BytesIO(response.content)))
    assert rgba.shape == (32, 32, 4)
    assert tuple(rgba[0, 0]) == (0, 0, 0, 0)  # background hidden by default
    assert tuple(rgba[0, 10]) == (255, 0, 0, 255)
    assert tuple(rgba[0, 20]) == (0, 255, 0, 255)
    assert tuple(rgba[0, 30]) == (0, 0, 0, 0)  # ignore
    hidden = np.asarray(
        PILImage.open(io.BytesIO(client.get(url, params={"hide": str(road.id)}).content))
    )
    assert hidden[0, 10, 3] == 0 and tuple(hidden[0, 20]) == (0, 255, 0, 255)
    assert hidden[0, 0, 3] == 255  # an explicit hide list shows the background
    assert client.get(url, headers={"If-None-Match": response.headers["etag"]}).status_code == 304
    assert_api_error(client.get(url, params={"hide": "x"}), 422, "invalid_hide")
    box = make_annotation(session, image, "bbox", {"x": 0, "y": 0, "w": 1, "h": 1}, tree)
    assert_api_error(
        client.get(f"/api/projects/{pid}/images/{image.id}/annotations/{box.id}/overlay"),
        404,
        "annotation_not_found",
    )
