"""Instance-segmentation data through the imports API, on SQLite and PostgreSQL: COCO polygons,
compressed and uncompressed RLE become polygon and mask annotations the training reader turns
into per-instance masks; self-intersecting and 2-point polygons are warned about in the import
report and dropped; the task offers the whole workflow and its own recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from PIL import ImageDraw
from sqlmodel import Session, select

from app.models import Annotation, DatasetImport
from app.services.annotations import subset_samples
from app.storage import Storage
from tests.api.test_imports import upload
from tests.factories import make_project
from tests.importers.builders import run_now, zip_folder
from workers.ml.tasks.base import samples_from_rows
from workers.ml.tasks.instance_segmentation.data import instance_targets, masks_of

SQUARE = [10, 8, 30, 8, 30, 28, 10, 28]


def _coco(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    PILImage.new("RGB", (40, 32), (90, 120, 150)).save(root / "images" / "a.png")
    canvas = PILImage.new("L", (40, 32), 0)
    ImageDraw.Draw(canvas).polygon([(22, 2), (36, 2), (36, 14)], fill=1)
    mask = np.asarray(canvas, np.uint8)
    from pycocotools import mask as coco_mask

    compressed = coco_mask.encode(np.asfortranarray(mask))["counts"].decode()
    flat = mask.flatten(order="F")
    runs = np.diff(np.r_[0, np.flatnonzero(np.diff(np.r_[0, flat, 0]))]).tolist()
    seg: list[Any] = [
        [SQUARE],
        {"counts": compressed, "size": [32, 40]},
        {"counts": runs, "size": [32, 40]},
        [[0, 0, 20, 20, 20, 0, 0, 20]],  # a bow-tie: self-intersecting
        [[1, 1, 5, 5]],  # two points
    ]
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 32}],
        "categories": [{"id": 1, "name": "shape"}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 1, "segmentation": s, "iscrowd": 0}
            for i, s in enumerate(seg)
        ],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def test_coco_instances_import_as_masks_and_bad_polygons_are_reported(
    client: TestClient, session: Session, engine, storage: Storage, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    project = make_project(session, task_type="instance_segmentation")
    archive = zip_folder(_coco(tmp_path / "coco"), tmp_path / "coco.zip")
    body = upload(client, project.id, archive, fmt="coco").json()
    run_now(engine, storage, body["import"]["id"])
    row = session.get(DatasetImport, body["import"]["id"])
    messages = [w["message"] for w in row.warnings]
    assert any("self-intersecting" in m for m in messages)
    assert any("fewer than 3 points" in m for m in messages)
    rows = session.exec(select(Annotation).where(Annotation.project_id == project.id)).all()
    assert sorted(a.kind for a in rows) == ["mask", "mask", "polygon"]

    split = client.post(
        f"/api/projects/{project.id}/splits",
        json={"name": "all", "ratios": {"train": 1.0}, "seed": 0},
    )
    assert split.status_code == 201, split.text
    split_id = split.json()["items"][0]["id"] if "items" in split.json() else split.json()["id"]
    (sample,) = samples_from_rows(
        subset_samples(session, storage, split_id=split_id, subsets=["train", "val", "test"])
    )
    rows = sorted(rows, key=lambda a: a.id or 0)  # the reader's order
    instances, bad = instance_targets(sample, ["shape"])
    masks, labels, ignore = masks_of(instances, 40, 32)
    assert bad == 0 and labels.tolist() == [1, 1, 1] and not ignore.any()
    by_kind = {a.kind: m for a, m in zip(rows, masks, strict=True)}
    assert by_kind["polygon"][8:29, 10:31].all() and by_kind["polygon"].sum() == 21 * 21
    rle_masks = [m for a, m in zip(rows, masks, strict=True) if a.kind == "mask"]
    assert np.array_equal(rle_masks[0], rle_masks[1]) and rle_masks[0].sum() > 50


def test_the_task_offers_the_workflow_and_its_recipe(client: TestClient) -> None:
    tasks = {t["key"]: t for t in client.get("/api/tasks").json()["items"]}
    spec = tasks["instance_segmentation"]
    assert {"train", "evaluate", "export", "predict"} <= set(spec["features"])
    models = client.get("/api/catalog/models", params={"task": "instance_segmentation"}).json()
    ids = {m["id"] for m in models["items"]}
    dinov3 = {
        f"maskrcnn_dinov3_{k}_{s}" for k in ("vit", "convnext") for s in ("small", "base", "large")
    }
    assert ids == {"maskrcnn_small", "maskrcnn_resnet50_fpn", *dinov3}
    recipe = client.get(
        "/api/catalog/hyperparameters", params={"task": "instance_segmentation"}
    ).json()
    text = json.dumps(recipe)
    assert "score_threshold" in text and "nms_iou" in text
