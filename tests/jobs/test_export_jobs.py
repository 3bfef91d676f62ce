"""Export and predict end to end: a trained digits model, real worker processes (pool),
real torch.onnx / onnxruntime, the download, and the plain deployment script."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Annotation, Image, Job, LabelClass, SplitMember
from app.services.events import list_events
from app.storage import Storage
from tests.factories import make_digits, make_project, make_split
from tests.helpers import assert_api_error, wait_for
from tests.jobs.conftest import PoolRunner

training = pytest.importorskip("tests.support.training")

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def wait_job(session: Session, job_id: int, timeout: float = 240) -> Job:
    def done() -> Job | None:
        session.expire_all()
        job = session.get(Job, job_id)
        return job if job and job.status not in ("queued", "running") else None

    job = wait_for(done, timeout=timeout, what=f"job {job_id} to end")
    if job.status != "succeeded":
        traces = [e.payload.get("traceback") for e in list_events(session, job_id=job_id)]
        pytest.fail(f"job {job_id} {job.status}: {job.error}\n{[t for t in traces if t]}")
    return job


def subset_images(session: Session, storage: Storage, split_id: int) -> list[tuple[Path, str]]:
    rows = session.exec(
        select(Image.stored_path, LabelClass.name)
        .join(SplitMember, SplitMember.image_id == Image.id)
        .join(Annotation, Annotation.image_id == Image.id)
        .join(LabelClass, LabelClass.id == Annotation.class_id)
        .where(SplitMember.split_id == split_id, SplitMember.subset == "test")
        .order_by(Image.id)
    ).all()
    return [(storage.resolve(path), name) for path, name in rows]


def test_export_validate_download_predict_and_reproduce_outside_the_studio(
    session: Session, storage: Storage, client: TestClient, pool: PoolRunner, tmp_path: Path
) -> None:
    project = make_project(session, name="Digits")
    images = make_digits(session, storage, project.id, per_class=10, size=32)
    split = make_split(session, project.id, images)
    experiment = training.train_tiny_experiment(
        session, storage, project.id, split.id, epochs=2, name="tiny digits"
    )
    test_accuracy = experiment.provenance["test_metrics"]["accuracy"]
    base = f"/api/projects/{project.id}/experiments/{experiment.id}/exports"

    posted = {}
    for fmt in ("onnx", "onnx_int8", "torchscript"):
        response = client.post(base, json={"format": fmt, "checkpoint": "best"})
        assert response.status_code == 202, response.text
        posted[fmt] = response.json()
    for body in posted.values():
        wait_job(session, body["job"]["id"])
    records = {r["format"]: r for r in client.get(base).json()["items"]}
    assert set(records) == {"onnx", "onnx_int8", "torchscript"}

    onnx_record = records["onnx"]
    report = onnx_record["validation"]
    assert onnx_record["status"] == "completed" and onnx_record["valid"] is True
    assert report["subset"] == "test" and report["samples"] == len(
        subset_images(session, storage, split.id)
    )
    assert report["max_abs_diff"] <= 1e-4 and report["top1_agreement"] == 1.0
    # the export's accuracy on the test subset is the studio's recorded test accuracy
    assert report["metric_checkpoint"] == pytest.approx(test_accuracy, abs=1e-12)
    assert report["metric_export"] == report["metric_checkpoint"] and report["metric_delta"] == 0
    meta = onnx_record["metadata"]
    assert meta["classes"] == [str(i) for i in range(10)]
    assert meta["preprocess"]["resize"] == [32, 32] and meta["preprocess"]["channel_order"] == "RGB"
    assert meta["outputs"] == ["logits"] and meta["opset"] == 17

    script = records["torchscript"]
    assert script["valid"] is True and script["validation"]["max_abs_diff"] <= 1e-4
    int8 = records["onnx_int8"]["validation"]
    assert {c["name"] for c in int8["checks"]} == {"top1_agreement", "metric_drop"}
    assert records["onnx_int8"]["valid"] == all(c["passed"] for c in int8["checks"])
    assert records["onnx_int8"]["bytes"] < onnx_record["bytes"]

    # download by link: safe attachment name, the same bytes, a checkable ONNX model
    download = client.get(onnx_record["download_url"])
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    assert onnx_record["file_name"] in download.headers["content-disposition"]
    assert len(download.content) == onnx_record["bytes"]
    model_path = tmp_path / onnx_record["file_name"]
    model_path.write_bytes(download.content)
    onnx.checker.check_model(str(model_path), full_check=True)
    props = {p.key: p.value for p in onnx.load(str(model_path)).metadata_props}
    assert json.loads(props["studio.metadata"])["preprocess"] == meta["preprocess"]

    # a plain script, isolated from the repository (-I, another cwd), with only the metadata
    sidecar = client.get(onnx_record["download_url"].replace("/download", "/metadata.json"))
    assert (
        sidecar.headers["content-disposition"]
        == 'attachment; filename="tiny-digits-best-onnx.json"'
    )
    metadata_path = tmp_path / "model.json"
    metadata_path.write_bytes(sidecar.content)
    truth = subset_images(session, storage, split.id)
    labels = tmp_path / "truth.tsv"
    labels.write_text("".join(f"{path}\t{name}\n" for path, name in truth))
    run = subprocess.run(
        [
            sys.executable,
            "-I",
            str(ROOT / "examples" / "predict_onnx.py"),
            str(model_path),
            "--metadata",
            str(metadata_path),
            "--labels",
            str(labels),
            "--json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    outside = json.loads(run.stdout)
    assert outside["total"] == len(truth)
    assert outside["accuracy"] == pytest.approx(test_accuracy, abs=1e-12)

    # predict: a batch with one bad file; per-image answers, the bad one an error entry
    files = [
        ("files", (f"digit{i}.png", path.read_bytes(), "image/png"))
        for i, (path, _) in enumerate(truth[:3])
    ]
    files.append(("files", ("notes.txt", b"not an image at all", "text/plain")))
    started = time.perf_counter()
    response = client.post(f"/api/projects/{project.id}/predict", files=files)
    latency = time.perf_counter() - started
    assert response.status_code == 200, response.text
    answer = response.json()
    print(
        f"predict round trip (resident predictor, cold): {latency:.2f} s; timing {answer['timing']}"
    )
    assert answer["model"]["export_id"] == onnx_record["id"]  # the default: newest valid fp32 ONNX
    assert answer["timing"]["batch_size"] == 3
    results = answer["results"]
    assert [r["ok"] for r in results] == [True, True, True, False]
    assert results[3]["error"]["code"] == "bad_image" and results[3]["file"] == "notes.txt"
    assert "/" not in results[3]["error"]["message"]  # no workspace path in the answer
    expected = {r["image"]: r["class"] for r in outside["predictions"]}
    for result, (path, _name) in zip(results[:3], truth[:3], strict=True):
        assert result["top"][0]["class"] == expected[str(path)]
        assert len(result["top"]) == 5 and result["top"][0]["score"] >= result["top"][1]["score"]

    bad = client.post(
        f"/api/projects/{project.id}/predict",
        data={"export_id": str(records["onnx_int8"]["id"])},
        files=[("files", ("x.png", b"\x89PNG\r\n\x1a\n truncated", "image/png"))],
    )
    error = assert_api_error(bad, 422, "no_valid_images")
    assert error["details"]["results"][0]["ok"] is False
    # The jobs list tells the same story: the try-it run on an unreadable file failed.
    items = client.get("/api/jobs", params={"page_size": 500}).json()["items"]
    jobs = [j for j in items if j["kind"] == "predict"]
    newest = max(jobs, key=lambda j: j["id"])
    assert newest["status"] == "failed" and "readable image" in newest["message"]
    partial = max((j for j in jobs if j["status"] == "succeeded"), key=lambda j: j["id"])
    assert partial["message"] == "3 of 4 file(s) predicted; 1 could not be read"
