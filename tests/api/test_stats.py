"""Dataset statistics: counts, distribution, sizes, exact and near duplicates."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Project
from app.storage import Storage
from tests.factories import make_annotation, make_class, make_image


def test_stats_count_classes_sizes_and_duplicates(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    same = np.full((32, 32, 3), 7, np.uint8)
    a = make_image(session, storage, pid, same, labels=["cat"], original_name="a.png")
    b = make_image(session, storage, pid, same, labels=["cat"], original_name="b.png")
    c = make_image(session, storage, pid, np.zeros((100, 300, 3), np.uint8), labels=["dog"])
    d = make_image(session, storage, pid, np.zeros((600, 20), np.uint8))
    dog = make_class(session, pid, "dog")
    make_annotation(session, c, "bbox", {"x": 0, "y": 0, "w": 3, "h": 3}, dog)
    # perceptual hashes: c and d differ in 2 bits, a in many; b has none (skipped)
    for image, phash in ((a, "ffffffff00000000"), (c, "0f0f0f0f0f0f0f0f"), (d, "0f0f0f0f0f0f0f0c")):
        image.phash = phash
        session.add(image)
    session.commit()

    stats = client.get(f"/api/projects/{pid}/stats").json()
    assert stats["image_count"] == 4
    assert stats["annotated_images"] == 3 and stats["unannotated_images"] == 1
    assert stats["annotation_count"] == 4
    assert stats["annotations_by_kind"] == {"label": 3, "bbox": 1}
    distribution = {
        row["name"]: (row["images"], row["annotations"]) for row in stats["class_distribution"]
    }
    assert distribution == {"cat": (2, 2), "dog": (1, 2)}
    histogram = {row["label"]: row["count"] for row in stats["size_histogram"]}
    assert histogram["0-63 px"] == 2 and histogram["256-511 px"] == 1
    assert histogram["512-1023 px"] == 1
    assert sum(histogram.values()) == 4
    assert {"width": 32, "height": 32, "count": 2} in stats["dimensions"]
    assert stats["exact_duplicate_groups"] == 1
    assert stats["exact_duplicates"][0]["image_ids"] == [a.id, b.id]
    assert stats["exact_duplicates"][0]["names"] == ["a.png", "b.png"]
    assert stats["near_duplicates_checked"] == 3
    assert [g["image_ids"] for g in stats["near_duplicates"]] == [[c.id, d.id]]
    assert stats["near_duplicates"][0]["distance"] == 2
    strict = client.get(f"/api/projects/{pid}/stats", params={"near_threshold": 1}).json()
    assert strict["near_duplicates"] == []


def test_stats_of_an_empty_project(client: TestClient, project: Project) -> None:
    stats = client.get(f"/api/projects/{project.id}/stats").json()
    assert stats["image_count"] == 0 and stats["class_distribution"] == []
    assert stats["exact_duplicates"] == [] and stats["near_duplicates"] == []
