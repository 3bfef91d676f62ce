"""Detection's bad-input edges: degenerate and out-of-image boxes at import (warned, dropped or
clipped), an image with 500 boxes (rendered, trained, evaluated), and the parity of an
export that finds nothing (no division by zero)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlmodel import Session, select

from app.models import Annotation, DatasetImport
from app.storage import Storage
from tests.factories import make_project
from tests.importers.builders import picture, run_now
from workers.ml.tasks.base import Ann, Prepared, Sample
from workers.ml.tasks.detection.export import parity

pytestmark = pytest.mark.slow


def _coco(root: Path, annotations: list[dict[str, Any]], size: tuple[int, int] = (64, 48)) -> Path:
    picture(root / "images" / "a.png", size)
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": size[0], "height": size[1]}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, **a}
            for i, a in enumerate(annotations)
        ],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def _import(session: Session, storage: Storage, engine: Any, root: Path) -> DatasetImport:
    project = make_project(session, task_type="detection")
    row = DatasetImport(project_id=project.id, source=f"folder:{root}", format="coco")
    session.add(row)
    session.commit()
    session.refresh(row)
    assert row.id is not None
    run_now(engine, storage, row.id)
    session.expire_all()
    refreshed = session.get(DatasetImport, row.id)
    assert refreshed is not None
    return refreshed


def test_degenerate_and_outside_boxes_are_warned_and_left_out(
    session: Session, storage: Storage, engine: Any, tmp_path: Path
) -> None:
    root = _coco(
        tmp_path / "c",
        [
            {"bbox": [10, 10, 20, 10]},  # fine
            {"bbox": [30, 5, 0, 12]},  # zero width
            {"bbox": [200, 200, 10, 10]},  # outside the image
            {"bbox": [50, 40, 30, 30]},  # runs off the edge: clipped to 14 x 8
        ],
    )
    row = _import(session, storage, engine, root)
    messages = " | ".join(w["message"] for w in row.warnings)
    assert "box outside the image or empty; skipped" in messages
    assert "box clipped to the image" in messages
    boxes = session.exec(select(Annotation).where(Annotation.project_id == row.project_id)).all()
    assert sorted((b.geometry["w"], b.geometry["h"]) for b in boxes) == [(14.0, 8.0), (20.0, 10.0)]


def test_an_image_with_500_boxes_renders_trains_and_evaluates(
    session: Session, storage: Storage, engine: Any, client: TestClient, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    boxes = [
        {"bbox": [float(x), float(y), 6.0, 6.0]}
        for x, y in zip(rng.uniform(0, 250, 500), rng.uniform(0, 250, 500), strict=True)
    ]
    root = _coco(tmp_path / "many", boxes, size=(256, 256))
    row = _import(session, storage, engine, root)
    count = len(
        session.exec(select(Annotation).where(Annotation.project_id == row.project_id)).all()
    )
    assert count == 500
    image_id = session.exec(select(Annotation.image_id)).first()
    page = client.get(f"/projects/{row.project_id}/dataset/images/{image_id}")
    assert page.status_code == 200 and page.text.count('data-testid="ov-bbox"') == 500
    grid = client.get(f"/projects/{row.project_id}/dataset")
    assert grid.status_code == 200 and 0 < grid.text.count('data-testid="ov-bbox"') <= 60

    from app.services.experiments import resolve_config
    from workers.ml.checkpoints import load_for_inference
    from workers.ml.tasks import get_task_code
    from workers.ml.train import FitRequest, fit

    code = get_task_code("detection")
    annotations = [
        Ann("bbox", "thing", b.geometry, {}) for b in session.exec(select(Annotation)).all()
    ]
    path = storage.resolve(_stored_path(session, image_id))  # type: ignore[arg-type]
    sample = Sample(1, path, "train", 256, 256, annotations)
    prepared = code.prepare({"train": [sample], "val": [sample]}, ["thing"], {})
    assert len(prepared.samples["train"][0].target["boxes"]) == 500
    config = resolve_config(
        {"epochs": 1, "batch_size": 1, "image_size": 128, "warmup_epochs": 0, "max_detections": 50},
        "detection",
    )
    result = fit(FitRequest("detection", config, ["thing"], prepared, tmp_path / "out"))
    assert result.status == "completed" and result.history
    model = load_for_inference(tmp_path / "out" / "best.ckpt")
    outcome = code.evaluate(model, [sample], options={})
    assert (
        outcome.rows[0]["prediction"]["counts"]["fn"]
        + outcome.rows[0]["prediction"]["counts"]["tp"]
        == 500
    )


def _stored_path(session: Session, image_id: int) -> str:
    from app.models import Image

    image = session.get(Image, image_id)
    assert image is not None
    return image.stored_path


def test_parity_of_an_export_that_finds_nothing_divides_by_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    PILImage.new("RGB", (32, 32)).save(path)
    samples = [
        Sample(1, path, "test", 32, 32, [Ann("bbox", "a", {"x": 1, "y": 1, "w": 9, "h": 9})])
    ]
    empty = {
        "boxes": np.zeros((0, 4), np.float32),
        "scores": np.zeros(0, np.float32),
        "labels": np.zeros(0, np.int64),
    }
    meta = {"classes": ["a"], "input": {"shape": [1, 3, 32, 32]}, "score_threshold": 0.25}
    report = parity(fmt="onnx", reference=[empty], candidate=[empty], samples=samples, meta=meta)
    assert report["matched_fraction"] == 1.0 and report["detections"] == 0
    assert report["metric_checkpoint"] == 0.0 and report["valid"] is True
    one = {
        "boxes": np.array([[1, 1, 10, 10]], np.float32),
        "scores": np.array([0.9], np.float32),
        "labels": np.array([0]),
    }
    differs = parity(fmt="onnx", reference=[one], candidate=[empty], samples=samples, meta=meta)
    assert differs["matched_fraction"] == 0.0 and differs["valid"] is False
    assert Prepared(samples={}).info == {}
