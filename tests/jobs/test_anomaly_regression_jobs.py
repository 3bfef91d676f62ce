"""Anomaly detection and regression end to end through the REST API with real worker
processes: folder import, split, train, evaluate, results, export with parity, prediction
with the task's envelope fields."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from benchmarks.synthetic import TINY_RECIPES, write_dataset
from tests.helpers import wait_for
from tests.jobs.conftest import PoolRunner

pytestmark = [pytest.mark.slow]
TIMEOUT = 300


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"import_roots": [(tmp_path / "data").resolve()]})


def done(client: TestClient, job_id: int, what: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["status"] not in ("queued", "running") else None

    job = wait_for(finished, timeout=TIMEOUT, interval=0.3, what=what)
    assert job["status"] == "succeeded", job
    return job


def workflow(client: TestClient, tmp_path: Path, task: str) -> dict[str, Any]:
    """Import → split → train → evaluate → export; returns the ids and the answers."""
    folder = (tmp_path / "data" / task).resolve()
    info = write_dataset(task, folder, images=36, size=48)
    project = client.post("/api/projects", json={"name": task, "task_type": task}).json()
    base = f"/api/projects/{project['id']}"
    started = client.post(f"{base}/imports", json={"path": str(folder), "format": info["format"]})
    assert started.status_code == 202, started.text
    done(client, started.json()["job"]["id"], "import")
    split = client.post(
        f"{base}/splits", json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}}
    ).json()
    experiment = client.post(
        f"{base}/experiments", json={"name": "tiny", "split_id": split["id"], **TINY_RECIPES[task]}
    ).json()
    exp = f"{base}/experiments/{experiment['id']}"
    done(client, client.post(f"{exp}/train").json()["job"]["id"], "training")
    trained = client.get(exp).json()
    assert trained["status"] == "completed", trained
    evaluation = client.post(f"{exp}/evaluation", json={"subsets": ["val", "test"]})
    assert evaluation.status_code == 202, evaluation.text
    done(client, evaluation.json()["job"]["id"], "evaluation")
    exported = client.post(f"{exp}/exports", json={"format": "onnx"})
    assert exported.status_code == 202, exported.text
    done(client, exported.json()["job"]["id"], "export")
    export = client.get(f"{exp}/exports/{exported.json()['export']['id']}").json()
    image = next(p for p in folder.rglob("*.png") if "ground_truth" not in p.parts)
    buffer = io.BytesIO()
    Image.open(image).convert("RGB").resize((60, 40)).save(buffer, format="PNG")
    predicted = client.post(
        f"{base}/predict",
        files=[("files", ("probe.png", buffer.getvalue(), "image/png"))],
        data={"export_id": str(export["id"])},
    )
    assert predicted.status_code == 200, predicted.text
    return {
        "base": base,
        "exp": exp,
        "trained": trained,
        "evaluation": client.get(f"{exp}/evaluation").json(),
        "export": export,
        "prediction": predicted.json()["results"][0],
    }


def test_anomaly_detection_end_to_end(client: TestClient, tmp_path: Path, pool: PoolRunner) -> None:
    run = workflow(client, tmp_path, "anomaly")
    trained, evaluation, export = run["trained"], run["evaluation"], run["export"]
    assert trained["provenance"]["task_info"]["mode"] == "unsupervised"
    threshold = trained["provenance"]["threshold"]
    aggregate = evaluation["aggregate"]
    for key in ("auroc", "f1", "precision", "recall", "threshold", "pixel_auroc", "aupro"):
        assert key in aggregate, key
    assert aggregate["threshold"] == threshold and aggregate["classes"] == ["normal", "anomalous"]
    results = client.get(f"{run['exp']}/evaluation/results", params={"sort": "confidence"})
    items = results.json()["items"]
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    heat = next(p for p in items[0]["prediction"]["predicted"] if p["kind"] == "mask")
    assert client.get(heat["href"]).headers["content-type"] == "image/png"

    assert export["valid"] is True, export["validation"]
    assert export["metadata"]["outputs"] == ["score", "map"]
    assert export["metadata"]["threshold"] == threshold and export["metadata"]["map_range"]
    answer = run["prediction"]
    assert answer["ok"] and answer["task"] == "anomaly"
    assert answer["image"] == {"width": 60, "height": 40}
    assert answer["threshold"] == threshold and answer["anomalous"] == (
        answer["score"] >= threshold
    )
    assert answer["map"].startswith("data:image/png;base64,")

    # a changed threshold applies to predictions at once, without retraining or re-export
    changed = client.put(f"{run['exp']}/decision", json={"threshold": answer["score"] + 1.0})
    assert changed.status_code == 200
    again = client.post(
        f"{run['base']}/predict",
        files=[("files", ("probe.png", _png(), "image/png"))],
        data={"export_id": str(export["id"])},
    ).json()["results"][0]
    assert again["threshold"] == pytest.approx(answer["score"] + 1.0)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (60, 40), (120, 110, 100)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_regression_end_to_end(client: TestClient, tmp_path: Path, pool: PoolRunner) -> None:
    run = workflow(client, tmp_path, "regression")
    aggregate = run["evaluation"]["aggregate"]
    for key in ("mae", "rmse", "mse", "r2", "per_target"):
        assert key in aggregate, key
    assert [t["target"] for t in aggregate["per_target"]] == ["length", "angle"]
    assert run["trained"]["provenance"]["task_info"]["target_std"][0] > 0
    results = client.get(f"{run['exp']}/evaluation/results", params={"sort": "error"}).json()
    errors = [i["error"] for i in results["items"]]
    assert errors == sorted(errors, reverse=True) and all(
        i["correct"] is None for i in results["items"]
    )
    truth = results["items"][0]["prediction"]["truth"][0]
    assert truth["names"] == ["length", "angle"] and len(truth["values"]) == 2
    cm = client.get(f"{run['exp']}/evaluation/confusion")
    assert cm.status_code == 200 and cm.json()["matrix"] == []

    export = run["export"]
    assert export["valid"] is True, export["validation"]
    assert export["metadata"]["outputs"] == ["values"] and export["metadata"]["targets"] == [
        "length",
        "angle",
    ]
    assert "in the graph" in export["metadata"]["postprocess"]["denormalization"]
    assert export["validation"]["metric"] == "mae"
    answer = run["prediction"]
    assert answer["ok"] and answer["task"] == "regression"
    assert set(answer["values"]) == {"length", "angle"}
    assert all(isinstance(v, float) for v in answer["values"].values())
