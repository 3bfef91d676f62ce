"""Oriented detection through the API, on SQLite and PostgreSQL: a DOTA zip with bad lines →
split → tiny fit → evaluation with rotated TP/FP/FN rows and background matches → a detail page
that stays short with hundreds of objects → ONNX export with rotated-box parity → prediction
of rotated boxes, and the plain onnxruntime example decoding the same boxes from metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.models import EvaluationResult, JobQueue
from app.services import jobs as job_service
from app.storage import Storage
from benchmarks.synthetic import write_dataset
from tests.importers.builders import run_now, zip_folder
from workers.context import JobContext
from workers.ml.tasks.oriented_detection.geometry import corners

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]


def run_job(settings: Settings, engine: Engine, queue: str, handler: Any) -> dict[str, Any]:
    with Session(engine) as session:
        job = job_service.claim_next_job(session, queue=queue)
        assert job is not None
    return handler(JobContext(job, settings, engine))  # type: ignore[no-any-return]


# Training end to end is database-agnostic; the API tests around it run on both databases.
@pytest.mark.sqlite_only
def test_oriented_detection_from_dota_import_to_predicted_rotated_boxes(
    client: TestClient,
    session: Session,
    storage: Storage,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
) -> None:
    from workers.handlers.evaluate import evaluate
    from workers.handlers.export import run_export_job
    from workers.handlers.predict import run_predict_job
    from workers.handlers.train import run_experiment

    # --- import: bad lines are reported and skipped, the rest kept ------------------------
    source = tmp_path / "src"
    write_dataset("oriented_detection", source, images=24, size=64, seed=4)
    with (source / "labelTxt" / "00001.txt").open("a") as handle:
        handle.write("5 5 5 5 5 5 5 5 bar 0\n")  # zero area
        handle.write("1 2 three 4 5 6 7 8 bar 0\n")  # not a number
    archive = zip_folder(source, tmp_path / "obb.zip")
    pid = client.post(
        "/api/projects", json={"name": "Rotated", "task_type": "oriented_detection"}
    ).json()["id"]
    with archive.open("rb") as handle:
        started = client.post(
            f"/api/projects/{pid}/imports", files={"file": ("obb.zip", handle, "application/zip")}
        )
    assert started.status_code == 202, started.text
    summary = run_now(engine, storage, started.json()["import"]["id"])
    assert summary["images"] == 24
    report = client.get(f"/api/projects/{pid}/imports/{started.json()['import']['id']}").json()
    messages = " | ".join(w["message"] for w in report["warnings"])
    assert "degenerate" in messages and "expected 'x1 y1" in messages
    classes = [c["name"] for c in client.get(f"/api/projects/{pid}/classes").json()["items"]]
    assert classes == ["arrow", "bar", "ellipse"]

    # --- split, tiny fit --------------------------------------------------------------------
    split = client.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.5, "val": 0.25, "test": 0.25}, "seed": 1},
    )
    assert split.status_code == 201, split.text
    recipe = {"model": "rotated_fcos_small", "epochs": 2, "image_size": 64, "batch_size": 8}
    recipe |= {"warmup_epochs": 0, "score_threshold": 0.05, "nms_iou": 0.3}
    made = client.post(
        f"/api/projects/{pid}/experiments",
        json={"name": "tiny", "split_id": split.json()["id"], **recipe},
    )
    assert made.status_code == 201, made.text
    eid = made.json()["id"]
    bad = client.post(
        f"/api/projects/{pid}/experiments",
        json={"name": "bad", "split_id": split.json()["id"], **recipe, "nms_iou": 1.5},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"]

    @contextmanager
    def open_session():  # type: ignore[no-untyped-def]
        with Session(engine, expire_on_commit=False) as inner:
            yield inner

    trained = run_experiment(open_session, storage, eid)
    assert trained["status"] == "completed"
    assert 0.0 <= trained["test_metrics"]["map50"] <= 1.0

    # --- evaluation: DOTA mAP, rotated rows, background matches ----------------------------
    base = f"/api/projects/{pid}/experiments/{eid}"
    assert client.post(f"{base}/evaluation", json={"subsets": ["val", "test"]}).status_code == 202
    run_job(settings, engine, "compute", evaluate)
    agg = client.get(f"{base}/evaluation").json()["aggregate"]
    assert isinstance(agg["map50"], float) and isinstance(agg["map"], float)
    assert agg["map"] <= agg["map50"] and {r["class"] for r in agg["per_class"]} <= set(classes)
    assert agg["match_iou"] == 0.5 and set(agg["counts"]) == {"tp", "fp", "fn"}
    listing = client.get(f"{base}/evaluation/results", params={"page_size": 100}).json()
    assert listing["total"] == agg["samples"]
    truth_count = 0
    for item in listing["items"]:
        prediction = item["prediction"]
        for entry in prediction["truth"] + prediction["predicted"]:
            assert entry["kind"] == "obb"
            assert entry["geometry"]["w"] >= entry["geometry"]["h"]
            assert -90 <= entry["geometry"]["angle"] < 90
        truth_count += len(prediction["truth"])
        counts = prediction["counts"]
        assert item["error"] == counts["fp"] + counts["fn"]
    assert truth_count > 0
    cm = client.get(f"{base}/evaluation/confusion").json()
    assert cm["background"] and np.asarray(cm["matrix"]).sum() > 0

    # --- a detail page with hundreds of objects stays a few collapsed lists ----------------
    row = session.get(EvaluationResult, listing["items"][0]["id"])
    assert row is not None
    many = [
        {
            "kind": "obb",
            "class": "bar",
            "index": 1,
            "geometry": {"cx": 5 + k % 50, "cy": 5 + k // 50, "w": 4, "h": 2, "angle": 30},
            "outcome": "fn",
        }
        for k in range(300)
    ]
    row.prediction = {**row.prediction, "truth": many, "counts": {"tp": 0, "fp": 0, "fn": 300}}
    session.add(row)
    session.commit()
    page = client.get(f"/projects/{pid}/evaluation/{eid}/results/{row.id}")
    assert page.status_code == 200
    assert 'data-testid="obb-group-truth-fn"' in page.text and "Missed (300)" in page.text
    assert "<table" not in page.text.split('data-testid="det-objects"')[1]
    group = page.text.split('data-testid="obb-group-truth-fn"')[0].rsplit("<details", 1)[1]
    assert "open" not in group  # folded: the page opens short
    assert page.text.count('data-testid="ov-obb"') >= 300  # every box still drawn

    # --- export with parity, predict rotated boxes ------------------------------------------
    exported = client.post(f"{base}/exports", json={"format": "onnx"})
    assert exported.status_code == 202, exported.text
    assert run_job(settings, engine, "compute", run_export_job)["valid"] is True
    record = client.get(f"{base}/exports/{exported.json()['export']['id']}").json()
    assert record["validation"]["matched_fraction"] >= 0.99
    meta = record["metadata"]
    assert meta["outputs"] == ["obb", "scores"] and meta["postprocess"]["nms_iou"] == 0.3

    image = source / "images" / "00002.png"
    asked = client.post(
        f"/api/projects/{pid}/predict",
        params={"wait": 0},
        data={"export_id": str(record["id"]), "score_threshold": "0.05"},
        files=[("files", ("00002.png", image.read_bytes(), "image/png"))],
    )
    assert asked.status_code == 202, asked.text
    (result,) = run_job(settings, engine, JobQueue.predict.value, run_predict_job)["results"]
    assert result["ok"] and result["task"] == "oriented_detection"
    assert result["image"] == {"width": 64, "height": 64}
    objects = result["objects"]
    assert objects and all(set(o) == {"class", "index", "score", "obb", "points"} for o in objects)
    for o in objects:
        box = np.array([[o["obb"][k] for k in ("cx", "cy", "w", "h", "angle")]])
        assert np.allclose(o["points"], corners(box)[0], atol=0.02)

    # the plain onnxruntime example decodes the same boxes from the file and its metadata
    model = tmp_path / "model.onnx"
    model.write_bytes(client.get(f"{base}/exports/{record['id']}/download").content)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    script = [sys.executable, str(ROOT / "examples" / "predict_onnx.py"), str(model), str(image)]
    script += ["--metadata", str(tmp_path / "model.json"), "--json", "--score-threshold", "0.05"]
    ran = subprocess.run(script, capture_output=True)
    assert ran.returncode == 0, ran.stderr
    plain = json.loads(ran.stdout)["predictions"][str(image)]
    assert [p["class"] for p in plain] == [o["class"] for o in objects]
    for p, o in zip(plain, objects, strict=True):
        assert p["score"] == pytest.approx(o["score"], abs=1e-4)
        for key in ("cx", "cy", "w", "h", "angle"):
            assert p["obb"][key] == pytest.approx(o["obb"][key], abs=0.02), key
