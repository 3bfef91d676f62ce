"""Detection end to end through the REST API and real worker processes: COCO zip upload →
stratified split → FCOS training with its loss parts → evaluation with mAP, TP/FP/FN rows and
a confusion matrix with background → ONNX export with box-matching parity → prediction in
original pixels (API and the plain deployment script)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.models import Job
from benchmarks.synthetic import write_dataset
from tests.helpers import wait_for
from tests.jobs.conftest import PoolRunner

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def wait_job(client: TestClient, job_id: int, timeout: float = 300) -> dict:  # type: ignore[type-arg]
    def done() -> dict | None:  # type: ignore[type-arg]
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] not in ("queued", "running") else None

    job = wait_for(done, timeout=timeout, what=f"job {job_id}")
    assert job["status"] == "succeeded", job
    return job


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def test_detection_from_coco_upload_to_boxes(
    client: TestClient, session: Session, pool: PoolRunner, tmp_path: Path
) -> None:
    data = tmp_path / "shapes"
    write_dataset("detection", data, images=40, size=64, seed=1)
    pid = client.post("/api/projects", json={"name": "Shapes", "task_type": "detection"}).json()[
        "id"
    ]
    started = client.post(
        f"/api/projects/{pid}/imports",
        files={"file": ("shapes.zip", zipped(data), "application/zip")},
    )
    assert started.status_code == 202, started.text
    wait_job(client, started.json()["job"]["id"])
    classes = client.get(f"/api/projects/{pid}/classes").json()["items"]
    assert {c["name"] for c in classes} == {"circle", "square", "triangle"}

    split = client.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0},
    )
    assert split.status_code == 201, split.text
    split_id = split.json()["items"][0]["id"] if "items" in split.json() else split.json()["id"]
    created = client.post(
        f"/api/projects/{pid}/experiments",
        json={
            "name": "fcos",
            "split_id": split_id,
            "epochs": 2,
            "image_size": 64,
            "batch_size": 8,
            "warmup_epochs": 0,
            "score_threshold": 0.2,
        },
    )
    assert created.status_code == 201, created.text
    experiment = created.json()
    assert experiment["model_id"] == "fcos_small" and experiment["config"]["nms_iou"] == 0.5
    eid = experiment["id"]
    base = f"/api/projects/{pid}/experiments/{eid}"
    wait_job(client, client.post(f"{base}/train").json()["job"]["id"])
    trained = client.get(base).json()
    assert trained["status"] == "completed"
    assert isinstance(trained["test_metrics"]["map50"], float)
    series = client.get(f"{base}/metrics").json()["series"]
    assert {"val/map50", "val/map", "train/loss", "train/loss_classification"} <= set(series)
    assert "train/loss_bbox_regression" in series and "lr" in series

    started = client.post(f"{base}/evaluation", json={"subsets": ["val", "test"]})
    assert started.status_code == 202, started.text
    wait_job(client, started.json()["job"]["id"])
    evaluation = client.get(f"{base}/evaluation").json()
    aggregate = evaluation["aggregate"]
    assert {"map", "map50", "map75", "mar100", "precision", "recall", "per_class"} <= set(aggregate)
    assert aggregate["classes"] == ["circle", "square", "triangle"]
    results = client.get(f"{base}/evaluation/results", params={"page_size": 500}).json()
    assert results["total"] == aggregate["samples"]
    rows = results["items"]
    assert all(
        r["error"] == r["prediction"]["counts"]["fp"] + r["prediction"]["counts"]["fn"]
        for r in rows
    )
    truth_boxes = sum(
        len([t for t in r["prediction"]["truth"] if t["outcome"] != "ignored"]) for r in rows
    )
    counts = aggregate["counts"]
    assert counts["tp"] + counts["fn"] >= truth_boxes - counts["fn"]  # every box is found or missed
    with_fp = client.get(
        f"{base}/evaluation/results", params={"has_fp": True, "page_size": 500}
    ).json()
    assert with_fp["total"] == sum(1 for r in rows if r["prediction"]["counts"]["fp"])
    confusion = client.get(f"{base}/evaluation/confusion").json()
    if counts["fp"] or counts["fn"]:
        assert confusion["background"] is True and confusion["labels"][-1] == "background"
    missed = client.get(
        f"{base}/evaluation/results", params={"predicted_class": -1, "page_size": 500}
    ).json()
    assert missed["total"] == sum(
        1 for r in rows if any(t["outcome"] == "fn" for t in r["prediction"]["truth"])
    )

    started = client.post(f"{base}/exports", json={"format": "onnx"})
    assert started.status_code == 202, started.text
    wait_job(client, started.json()["job"]["id"])
    export = client.get(f"{base}/exports").json()["items"][0]
    assert export["status"] == "completed" and export["valid"] is True, export["validation"]
    assert export["metadata"]["outputs"] == ["boxes", "scores", "labels"]
    assert (
        export["metadata"]["input"]["batch"] == 1 and export["metadata"]["score_threshold"] == 0.2
    )
    names = {c["name"] for c in export["validation"]["checks"]}
    assert {"matched_fraction", "max_box_diff", "max_score_diff"} <= names

    image = sorted((data / "images").glob("*.png"))[0]
    answer = client.post(
        f"/api/projects/{pid}/predict",
        files=[
            ("files", (image.name, image.read_bytes(), "image/png")),
            ("files", ("broken.png", b"not an image", "image/png")),
        ],
        data={"export_id": str(export["id"]), "score_threshold": "0.0"},
        params={"wait": 120},
    )
    assert answer.status_code == 200, answer.text
    first, broken = answer.json()["results"]
    assert (
        first["ok"]
        and first["task"] == "detection"
        and first["image"] == {"width": 64, "height": 64}
    )
    assert broken["ok"] is False and broken["error"]["code"] == "bad_image"
    for obj in first["objects"]:
        assert {"class", "index", "score", "bbox"} <= set(obj)
        assert obj["class"] in {"circle", "square", "triangle"}
    scores = [o["score"] for o in first["objects"]]
    assert scores == sorted(scores, reverse=True)

    model = tmp_path / "detector.onnx"
    model.write_bytes(client.get(f"{base}/exports/{export['id']}/download").content)
    script = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "predict_onnx.py"),
            str(model),
            str(image),
            "--score-threshold",
            "0",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 0, script.stderr
    plain = json.loads(script.stdout)["predictions"][str(image)]
    assert len(plain) == len(scores)
    assert all(abs(o["score"] - s) < 1e-3 for o, s in zip(plain, scores, strict=True))
    assert session.get(Job, 1) is not None
