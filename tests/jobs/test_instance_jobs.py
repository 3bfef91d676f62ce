"""Instance segmentation end to end through the REST API and real worker processes: a COCO zip
(polygons, compressed and uncompressed RLE) → stratified split → small Mask R-CNN training with
its loss parts → evaluation with mask and box mAP, per-instance TP/FP/FN rows and a confusion
matrix with background → ONNX export with instance-matching parity → prediction of polygons in
original pixels, with COCO RLE masks on request, and the plain onnxruntime example
(examples/predict_onnx.py) reading the same objects from the exported file alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from benchmarks.synthetic import write_dataset
from tests.jobs.conftest import PoolRunner
from tests.jobs.test_detection_jobs import wait_job, zipped

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
CLASSES = {"circle", "square", "triangle"}
ROOT = Path(__file__).resolve().parents[2]


def post(client: TestClient, url: str, **kwargs: Any) -> httpx.Response:
    """POST, retried while the API answers 503 database_busy (its documented "try again in a
    few seconds": on a loaded machine a worker's SQLite write can outlast the busy timeout)."""
    for _ in range(20):
        response = client.post(url, **kwargs)
        if response.status_code != 503:
            return response
        time.sleep(3)
    return response


def polygon_iou(a: list[list[float]], b: list[list[float]], width: int, height: int) -> float:
    """IoU of two polygons rasterised at 8 samples per pixel."""
    drawn = []
    for points in (a, b):
        canvas = Image.new("1", (width * 8, height * 8))
        ImageDraw.Draw(canvas).polygon([(x * 8, y * 8) for x, y in points], fill=1)
        drawn.append(np.asarray(canvas))
    union = (drawn[0] | drawn[1]).sum()
    return float((drawn[0] & drawn[1]).sum() / union) if union else 1.0


def test_instance_segmentation_from_coco_upload_to_polygons(
    client: TestClient, pool: PoolRunner, tmp_path: Path
) -> None:
    data = tmp_path / "shapes"
    write_dataset("instance_segmentation", data, images=30, size=48, seed=1)
    pid = client.post(
        "/api/projects", json={"name": "Instances", "task_type": "instance_segmentation"}
    ).json()["id"]
    started = post(
        client,
        f"/api/projects/{pid}/imports",
        files={"file": ("shapes.zip", zipped(data), "application/zip")},
    )
    assert started.status_code == 202, started.text
    wait_job(client, started.json()["job"]["id"])
    classes = client.get(f"/api/projects/{pid}/classes").json()["items"]
    assert {c["name"] for c in classes} == CLASSES

    split = post(
        client,
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0},
    )
    assert split.status_code == 201, split.text
    split_id = split.json()["items"][0]["id"] if "items" in split.json() else split.json()["id"]
    bad = post(
        client,
        f"/api/projects/{pid}/experiments",
        json={"name": "bad", "split_id": split_id, "score_threshold": 2},
    )
    assert bad.status_code == 422 and "error" in bad.json()
    created = post(
        client,
        f"/api/projects/{pid}/experiments",
        json={
            "name": "mask r-cnn",
            "split_id": split_id,
            "epochs": 2,
            "image_size": 48,
            "batch_size": 8,
            "warmup_epochs": 0,
            "score_threshold": 0.1,
        },
    )
    assert created.status_code == 201, created.text
    experiment = created.json()
    assert experiment["model_id"] == "maskrcnn_small"
    base = f"/api/projects/{pid}/experiments/{experiment['id']}"
    wait_job(client, post(client, f"{base}/train").json()["job"]["id"], timeout=600)
    trained = client.get(base).json()
    assert trained["status"] == "completed"
    assert isinstance(trained["test_metrics"]["map50_mask"], float)
    series = client.get(f"{base}/metrics").json()["series"]
    assert {"val/map_mask", "val/map50_mask", "val/map50_box", "train/loss_mask"} <= set(series)

    started = post(client, f"{base}/evaluation", json={"subsets": ["val", "test"]})
    assert started.status_code == 202, started.text
    wait_job(client, started.json()["job"]["id"], timeout=600)
    aggregate = client.get(f"{base}/evaluation").json()["aggregate"]
    assert {"map_mask", "map50_mask", "map_box", "map50_box", "per_class"} <= set(aggregate)
    assert {row["class"] for row in aggregate["per_class"]} <= CLASSES
    rows = client.get(f"{base}/evaluation/results", params={"page_size": 500}).json()["items"]
    assert len(rows) == aggregate["samples"]
    for row in rows:
        prediction = row["prediction"]
        counts = prediction["counts"]
        assert row["error"] == counts["fp"] + counts["fn"]
        assert all(t["kind"] == "polygon" for t in prediction["truth"])
        assert all(p["kind"] == "polygon" and "verdict" in p for p in prediction["predicted"])
    truth = sum(len(r["prediction"]["truth"]) for r in rows)
    assert truth > 0 and aggregate["counts"]["tp"] + aggregate["counts"]["fn"] >= 1
    confusion = client.get(f"{base}/evaluation/confusion").json()
    if aggregate["counts"]["fp"] or aggregate["counts"]["fn"]:
        assert confusion["background"] is True and confusion["labels"][-1] == "background"

    started = post(client, f"{base}/exports", json={"format": "onnx"})
    assert started.status_code == 202, started.text
    wait_job(client, started.json()["job"]["id"], timeout=600)
    export = client.get(f"{base}/exports").json()["items"][0]
    assert export["status"] == "completed" and export["valid"] is True, export["validation"]
    assert export["metadata"]["outputs"] == ["boxes", "scores", "labels", "masks"]
    names = {c["name"] for c in export["validation"]["checks"]}
    assert {"matched_fraction", "mean_mask_iou", "map50_mask_delta"} <= names or {
        "matched_fraction",
        "mean_mask_iou",
    } <= names

    image = sorted((data / "images").glob("*.png"))[0]
    answer = post(
        client,
        f"/api/projects/{pid}/predict",
        files=[("files", (image.name, image.read_bytes(), "image/png"))],
        data={"export_id": str(export["id"]), "score_threshold": "0.0", "rle": "true"},
        params={"wait": 120},
    )
    assert answer.status_code == 200, answer.text
    (first,) = answer.json()["results"]
    assert first["ok"] and first["task"] == "instance_segmentation"
    assert first["image"] == {"width": 48, "height": 48}
    for obj in first["objects"]:
        assert {"class", "index", "score", "bbox", "polygon", "rle"} <= set(obj)
        assert obj["class"] in CLASSES and len(obj["polygon"]) >= 3
        points = np.array(obj["polygon"])
        assert points.min() >= 0 and points.max() <= 48
        assert obj["rle"]["size"] == [48, 48] and sum(obj["rle"]["counts"]) == 48 * 48
    images = sorted((data / "images").glob("*.png"))[:3]
    with Image.open(images[0]) as picture:  # not the model's size nor square: boxes scale
        picture.resize((72, 60)).save(tmp_path / "wide.png")
    images.append(tmp_path / "wide.png")
    answers = post(
        client,
        f"/api/projects/{pid}/predict",
        files=[("files", (i.name, i.read_bytes(), "image/png")) for i in images],
        data={"export_id": str(export["id"]), "score_threshold": "0.0"},
        params={"wait": 120},
    ).json()["results"]
    assert all("rle" not in o for r in answers for o in r["objects"])

    # The plain onnxruntime example reads the same objects from the file and its metadata.
    model = tmp_path / "instances.onnx"
    model.write_bytes(client.get(f"{base}/exports/{export['id']}/download").content)
    script = [sys.executable, "-I", str(ROOT / "examples" / "predict_onnx.py"), str(model)]
    script += [*map(str, images), "--score-threshold", "0"]
    ran = subprocess.run([*script, "--json"], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)["predictions"]
    compared = 0
    for path, answer in zip(images, answers, strict=True):
        mine, theirs = found[str(path)], answer["objects"]
        assert [o["class"] for o in mine] == [o["class"] for o in theirs]
        for o, t in zip(mine, theirs, strict=True):
            assert o["score"] == pytest.approx(t["score"], abs=1e-4)
            assert all(abs(o["bbox"][k] - t["bbox"][k]) <= 1 for k in ("x", "y", "w", "h"))
            size = answer["image"]["width"], answer["image"]["height"]
            assert polygon_iou(o["polygon"], t["polygon"], *size) >= 0.9
            # the same rules restated: the same outline vertex for vertex (to rounding)
            assert np.allclose(o["polygon"], t["polygon"], atol=0.02)
            compared += 1
    assert compared > 0
    lines = subprocess.run(script, capture_output=True, text=True, timeout=300).stdout.splitlines()
    assert len(lines) == compared  # image, class, score, x, y, w, h, polygon
    assert all(len(line.split("\t")) == 8 for line in lines)
