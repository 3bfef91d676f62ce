"""Semantic segmentation through the API, on SQLite and PostgreSQL: mask PNG import (with the
bad inputs the issue names) → pixel-share statistics → split → tiny fit → evaluation with
mask artefacts, the pixel confusion matrix and its cells → ONNX export with parity →
prediction of an index mask. Jobs run in this process through their real handlers."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.config import Settings
from app.models import EvaluationMatch, JobQueue
from app.services import jobs as job_service
from app.storage import Storage
from tests.helpers import assert_api_error
from tests.importers.builders import run_now, zip_folder
from tests.support.segmentation import CLASSES, write_source
from workers.context import JobContext

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def run_job(settings: Settings, engine: Engine, queue: str, handler: Any) -> dict[str, Any]:
    with Session(engine) as session:
        job = job_service.claim_next_job(session, queue=queue)
        assert job is not None
    return handler(JobContext(job, settings, engine))  # type: ignore[no-any-return]


# Training end to end is database-agnostic; the API tests around it run on both databases.
@pytest.mark.sqlite_only
def test_segmentation_from_mask_import_to_predicted_mask(
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

    # --- import: background at 0, bad masks reported, nothing lost -------------------------
    pid = client.post("/api/projects", json={"name": "Shapes", "task_type": "segmentation"}).json()[
        "id"
    ]
    bad = write_source(tmp_path / "src")
    archive = zip_folder(tmp_path / "src", tmp_path / "shapes.zip")
    with archive.open("rb") as handle:
        started = client.post(
            f"/api/projects/{pid}/imports",
            files={"file": ("shapes.zip", handle, "application/zip")},
        )
    assert started.status_code == 202, started.text
    summary = run_now(engine, storage, started.json()["import"]["id"])
    assert summary["images"] == 18 and summary["errors"] == 0
    report = client.get(f"/api/projects/{pid}/imports/{started.json()['import']['id']}").json()
    warned = {w["file"]: w["message"] for w in report["warnings"]}
    assert "is 20x20, the image 32x32; skipped" in warned[bad["size"]]
    assert "class indices [7] are not in the class map" in warned[bad["unknown"]]
    assert "every mask pixel is ignore" in warned[bad["all_ignore"]]
    classes = client.get(f"/api/projects/{pid}/classes").json()["items"]
    assert [(c["name"], c["index"]) for c in classes] == [(n, i) for i, n in enumerate(CLASSES)]

    stats = client.get(f"/api/projects/{pid}/stats").json()
    pixels = {c["name"]: c["pixels"] for c in stats["class_distribution"]}
    assert pixels["background"] > pixels["square"] > 0 and None not in pixels.values()

    # --- split, tiny fit ---------------------------------------------------------------------
    split = client.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.5, "val": 0.2, "test": 0.3}, "seed": 1},
    )
    assert split.status_code == 201, split.text
    split_id = split.json()["id"]
    recipe = {"model": "unet_small", "epochs": 2, "image_size": 32, "batch_size": 4}
    recipe |= {"warmup_epochs": 0, "decoder_channels": 8, "class_weights": "sqrt_inverse_frequency"}
    made = client.post(
        f"/api/projects/{pid}/experiments", json={"name": "tiny", "split_id": split_id, **recipe}
    )
    assert made.status_code == 201, made.text
    eid = made.json()["id"]

    @contextmanager
    def open_session():  # type: ignore[no-untyped-def]
        with Session(engine, expire_on_commit=False) as inner:
            yield inner

    trained = run_experiment(open_session, storage, eid)
    assert trained["status"] == "completed"
    assert (
        trained["task_info"]["background"] == 0 and len(trained["task_info"]["class_weights"]) == 4
    )
    assert 0.0 <= trained["test_metrics"]["miou"] <= 1.0

    # --- evaluation -------------------------------------------------------------------------
    base = f"/api/projects/{pid}/experiments/{eid}"
    started = client.post(
        f"{base}/evaluation", json={"subsets": ["val", "test"], "tta": ["hflip", "multiscale"]}
    )
    assert started.status_code == 202, started.text
    run_job(settings, engine, "compute", evaluate)
    agg = client.get(f"{base}/evaluation").json()["aggregate"]
    assert agg["tta"] == {"enabled": True, "hflip": True, "scales": [24, 32, 40], "views": 6}
    for key in ("miou", "miou_no_bg", "pixel_accuracy", "dice", "pixel_accuracy_no_bg"):
        assert 0.0 <= agg[key] <= 1.0, key
    assert len(agg["per_class_iou"]) == 4 and agg["background_class"] == "background"
    matrix = np.asarray(agg["confusion"]["matrix"])
    assert agg["confusion"]["unit"] == "pixels"
    cm = client.get(f"{base}/evaluation/confusion").json()
    assert cm["unit"] == "pixels" and cm["matrix"] == matrix.tolist() and not cm["background"]

    listing = client.get(f"{base}/evaluation/results", params={"page_size": 100}).json()
    assert listing["total"] == agg["samples"]
    scored = matrix.sum()
    counted = 0
    for item in listing["items"]:
        prediction = item["prediction"]
        urls = prediction["artefact_urls"]
        assert set(urls) == {"predicted", "truth", "error"}
        raw = client.get(urls["predicted"])
        assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
        mask = np.asarray(Image.open(io.BytesIO(raw.content)))
        assert mask.shape == (item["height"], item["width"]) and mask.max() < 4
        hrefs = {e["href"] for e in prediction["predicted"]}
        assert hrefs == {urls["predicted"] + "?hide=0"}
        counted += sum(e["pixels"] for e in prediction["truth"])
        assert item["error"] == pytest.approx(1 - prediction["pixel_accuracy"])
    assert counted == scored  # every valid truth pixel is in the matrix once

    wide = next(i for i in listing["items"] if i["original_name"].startswith("images/wide"))
    overlay = client.get(wide["prediction"]["artefact_urls"]["predicted"], params={"hide": ""})
    rgba = np.asarray(Image.open(io.BytesIO(overlay.content)))
    assert rgba.shape == (32, 48, 4) and rgba[..., 3].max() == 255
    error_url = wide["prediction"]["artefact_urls"]["error"]
    tinted = client.get(error_url, params={"hide": "", "tint": "dc2626"})
    colours = {tuple(p) for p in np.asarray(Image.open(io.BytesIO(tinted.content))).reshape(-1, 4)}
    assert colours <= {(0, 0, 0, 0), (0xDC, 0x26, 0x26, 255)}
    assert_api_error(client.get(error_url, params={"hide": "", "tint": "red"}), 422, "invalid_tint")
    assert_api_error(client.get(error_url, params={"hide": "a,b"}), 422, "invalid_hide")

    # a cell opens the images with the most pixels of that confusion first
    off = [(matrix[t, p], t, p) for t in range(4) for p in range(4) if t != p and matrix[t, p]]
    _, true_class, predicted = max(off) if off else (0, 0, 0)
    cell = client.get(
        f"{base}/evaluation/results",
        params={"true_class": true_class, "predicted_class": predicted, "sort": "cell"},
    ).json()
    rows = session.exec(
        select(EvaluationMatch).where(
            EvaluationMatch.true_class == true_class, EvaluationMatch.predicted_class == predicted
        )
    ).all()
    pixels_in_cell = {m.image_id: m.score for m in rows}
    shown = [pixels_in_cell[i["image_id"]] for i in cell["items"]]
    assert shown == sorted(pixels_in_cell.values(), reverse=True)[: len(shown)]
    assert cell["total"] == len(pixels_in_cell)

    # --- export with parity, then predict an index mask ----------------------------------
    exported = client.post(f"{base}/exports", json={"format": "onnx"})
    assert exported.status_code == 202, exported.text
    assert run_job(settings, engine, "compute", run_export_job)["valid"] is True
    record = client.get(f"{base}/exports/{exported.json()['export']['id']}").json()
    validation = record["validation"]
    assert validation["pixel_agreement"] >= 0.999 and validation["max_abs_diff"] <= 1e-4
    assert validation["metric"] == "miou" and validation["metric_export"] is not None
    assert record["metadata"]["outputs"] == ["logits"] and record["metadata"]["background"] == 0

    for fmt in ("torchscript", "onnx_int8"):
        assert client.post(f"{base}/exports", json={"format": fmt}).status_code == 202
        run_job(settings, engine, "compute", run_export_job)
    records = {r["format"]: r for r in client.get(f"{base}/exports").json()["items"]}
    assert records["torchscript"]["valid"] is True
    int8 = records["onnx_int8"]["validation"]  # judged by its effect, not element-wise
    assert {c["name"] for c in int8["checks"]} == {"pixel_agreement", "metric_drop"}

    source = tmp_path / "src" / "images" / "wide_a.png"
    asked = client.post(
        f"/api/projects/{pid}/predict",
        params={"wait": 0},
        data={"export_id": str(record["id"])},
        files=[("files", ("wide_a.png", source.read_bytes(), "image/png"))],
    )
    assert asked.status_code == 202, asked.text
    answer = run_job(settings, engine, JobQueue.predict.value, run_predict_job)
    (result,) = answer["results"]
    assert result["ok"] and result["task"] == "segmentation"
    assert result["image"] == {"width": 48, "height": 32}
    predicted_mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["mask"]["data"]))))
    assert predicted_mask.shape == (32, 48)
    shares = {c["class"]: c for c in result["classes"]}
    assert sum(c["fraction"] for c in result["classes"]) == pytest.approx(1.0)
    for name, share in shares.items():
        assert share["pixels"] == int((predicted_mask == CLASSES.index(name)).sum())

    # the plain onnxruntime example reads the same mask from the file and its metadata alone
    model = tmp_path / "model.onnx"
    model.write_bytes(client.get(f"{base}/exports/{record['id']}/download").content)
    (tmp_path / "model.json").write_text(json.dumps(record["metadata"]))
    script = [sys.executable, str(ROOT / "examples" / "predict_onnx.py"), str(model), str(source)]
    script += ["--metadata", str(tmp_path / "model.json"), "--json"]
    ran = subprocess.run([*script, "--out-dir", str(tmp_path / "out")], capture_output=True)
    assert ran.returncode == 0, ran.stderr
    (plain,) = json.loads(ran.stdout)["predictions"]
    assert np.array_equal(np.asarray(Image.open(plain["mask"])), predicted_mask)
    assert plain["classes"] == [
        {k: c[k] for k in ("class", "pixels", "fraction")} for c in result["classes"]
    ]

    # --- the evaluation's files go with it ----------------------------------------------
    assert client.delete(f"{base}/evaluation").status_code == 204
    assert client.get(wide["prediction"]["artefact_urls"]["predicted"]).status_code == 404
    folder = storage.experiment_dir(pid, eid) / "evaluations"
    assert not any(folder.rglob("*.png"))
