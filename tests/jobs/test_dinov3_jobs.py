"""Tiny DINOv3 classifier, detector and segmenter end to end in real worker processes: train
(frozen backbone; the classifier with its last block unfrozen), evaluate, export to ONNX with
parity, predict. STUDIO_DINOV3_ARCH=tiny builds a two-layer, 32-wide DINOv3 ViT from
transformers' own code with random weights."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.config import Settings
from app.services import evaluations as evaluation_service
from app.storage import Storage
from tests.factories import make_digits, make_project, make_split
from tests.jobs.conftest import PoolRunner
from tests.jobs.test_export_jobs import subset_images, wait_job

pytestmark = [pytest.mark.slow]


@pytest.fixture
def tiny_pool(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> Iterator[PoolRunner]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STUDIO_DINOV3_ARCH", "tiny")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    runner = PoolRunner(settings)
    runner.start()
    yield runner
    runner.stop()


def test_tiny_dinov3_trains_evaluates_exports_and_predicts(
    session: Session, storage: Storage, client: TestClient, tiny_pool: PoolRunner
) -> None:
    project = make_project(session, name="Digits")
    images = make_digits(session, storage, project.id, per_class=4, size=32)
    split = make_split(session, project.id, images)
    base = f"/api/projects/{project.id}/experiments"
    created = client.post(
        base,
        json={
            "name": "dino",
            "split_id": split.id,
            "model": "dinov3_vit_small",
            "image_size": 32,
            "epochs": 2,
            "batch_size": 16,
            "warmup_epochs": 0,
            "unfreeze_last_blocks": 1,
        },
    )
    assert created.status_code == 201, created.text
    experiment = created.json()
    assert experiment["config"]["freeze_backbone"] is True  # DINOv3's default
    started = client.post(f"{base}/{experiment['id']}/train")
    assert started.status_code == 202, started.text
    wait_job(session, started.json()["job"]["id"], timeout=400)
    done = client.get(f"{base}/{experiment['id']}").json()
    assert done["status"] == "completed", done
    provenance = done["provenance"]
    assert provenance["arch"]["kind"] == "vit" and provenance["arch"]["scale"] == "tiny"
    assert done["weights_used"] == {"file": None, "sha256": None, "source": "random initialisation"}
    assert provenance["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert done["test_metrics"]["n"] == len(subset_images(session, storage, split.id))

    evaluation = client.post(f"{base}/{experiment['id']}/evaluation", json={"subsets": ["test"]})
    assert evaluation.status_code == 202, evaluation.text
    wait_job(session, evaluation.json()["job"]["id"], timeout=300)
    stored = evaluation_service.get_evaluation(
        session, project_id=project.id, experiment_id=experiment["id"]
    )
    assert stored.status == "completed"
    assert stored.aggregate["accuracy"] == pytest.approx(done["test_metrics"]["accuracy"])

    exports = f"{base}/{experiment['id']}/exports"
    posted = client.post(exports, json={"format": "onnx", "checkpoint": "best"})
    assert posted.status_code == 202, posted.text
    wait_job(session, posted.json()["job"]["id"], timeout=300)
    record = client.get(exports).json()["items"][0]
    assert record["valid"] is True, record["validation"]
    assert record["validation"]["max_abs_diff"] <= 1e-4
    assert record["metadata"]["input"]["batch"] == "dynamic"
    assert record["metadata"]["pretrained_weights"]["source"] == "random initialisation"

    truth = subset_images(session, storage, split.id)[:2]
    files = [("files", (f"d{i}.png", path.read_bytes(), "image/png")) for i, (path, _) in
             enumerate(truth)]  # fmt: skip
    answer = client.post(f"/api/projects/{project.id}/predict", files=files)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["ok"] for r in results] == [True, True]
    assert {r["top"][0]["class"] for r in results} <= {str(i) for i in range(10)}


# task -> (model, image size, headline metric): the ViT's simple feature pyramid into the
# FCOS heads, and into the DeepLabV3+ decoder.
DENSE = {
    "detection": ("dinov3_vit_small", 64, "map50"),
    # segmentation's DINOv3 path runs end to end in tests/conformance/test_dinov3.py (ViT and
    # ConvNeXt); here the real-worker plumbing once is enough for the suite's time budget.
}


@pytest.mark.parametrize("task", list(DENSE))
def test_tiny_dinov3_dense_model_trains_evaluates_exports_and_predicts(
    task: str, client: TestClient, tiny_pool: PoolRunner, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from benchmarks.synthetic import write_dataset
    from tests.jobs.test_detection_jobs import wait_job as wait_api_job
    from tests.jobs.test_detection_jobs import zipped

    model, size, metric = DENSE[task]
    data = tmp_path / "shapes"
    write_dataset(task, data, images=24, size=size, seed=2)
    pid = client.post("/api/projects", json={"name": "Shapes", "task_type": task}).json()["id"]
    started = client.post(
        f"/api/projects/{pid}/imports",
        files={"file": ("shapes.zip", zipped(data), "application/zip")},
    )
    wait_api_job(client, started.json()["job"]["id"])
    split = client.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0},
    ).json()
    created = client.post(
        f"/api/projects/{pid}/experiments",
        json={"name": "dino", "split_id": split["id"], "model": model, "epochs": 1,
              "image_size": size, "batch_size": 8, "warmup_epochs": 0},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    base = f"/api/projects/{pid}/experiments/{created.json()['id']}"
    assert created.json()["config"]["freeze_backbone"] is True
    wait_api_job(client, client.post(f"{base}/train").json()["job"]["id"], timeout=400)
    trained = client.get(base).json()
    assert trained["status"] == "completed" and trained["provenance"]["arch"]["scale"] == "tiny"
    assert isinstance(trained["test_metrics"][metric], float)
    evaluation = client.post(f"{base}/evaluation", json={"subsets": ["test"]})
    wait_api_job(client, evaluation.json()["job"]["id"])
    assert metric in client.get(f"{base}/evaluation").json()["aggregate"]
    exported = client.post(f"{base}/exports", json={"format": "onnx"})
    wait_api_job(client, exported.json()["job"]["id"])
    export = client.get(f"{base}/exports").json()["items"][0]
    assert export["status"] == "completed" and export["valid"] is True, export["validation"]
    # a detector exports at batch 1 (torchvision's detectors), a segmenter with a dynamic batch
    assert export["metadata"]["input"]["batch"] == (1 if task == "detection" else "dynamic")
    assert export["metadata"]["pretrained_weights"]["source"] == "random initialisation"
    image = sorted((data / "images").glob("*.png"))[0]
    answer = client.post(
        f"/api/projects/{pid}/predict",
        files=[("files", (image.name, image.read_bytes(), "image/png"))],
        data={"export_id": str(export["id"]), "score_threshold": "0.0"},
        params={"wait": 120},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()["results"][0]
    assert result["ok"] and result["task"] == task
    assert result["image"] == {"width": size, "height": size}
    shapes = {"circle", "square", "triangle"}
    if task == "detection":
        assert all(o["class"] in shapes for o in result["objects"])
    else:
        assert {c["class"] for c in result["classes"]} <= {"background", *shapes}
