"""Weights API: the per-model listing, adding weights (verified by a worker subprocess), and
`pretrained: "required"` refusing before any job when the weights are absent."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.catalog import list_models
from app.config import Settings
from app.main import create_app
from app.models import Job, Project
from app.storage import Storage
from tests.helpers import assert_api_error

RESNET18 = "resnet18-f37072fd.pth"


@pytest.fixture(autouse=True)
def no_machine_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The machine's own torch / Hugging Face caches must not leak into what tests see."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("STUDIO_WEIGHTS_DIR", raising=False)


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    paths = {"import": tmp_path / "incoming", "weights": tmp_path / "weights-dir"}
    for path in paths.values():
        path.mkdir()
    return paths


@pytest.fixture
def wclient(settings: Settings, engine, roots: dict[str, Path]) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    configured = settings.model_copy(
        update={"import_roots": [roots["import"].resolve()], "weights_dir": roots["weights"]}
    )
    app = create_app(configured)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client
    app.state.engine.dispose()


def rows(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/api/weights")
    assert response.status_code == 200, response.text
    return {item["model_id"]: item for item in response.json()["items"]}


def test_every_catalog_model_is_listed_with_where_it_is_looked_for(
    wclient: TestClient, roots: dict[str, Path], tmp_path: Path
) -> None:
    listed = rows(wclient)
    assert set(listed) == {m.id for m in list_models()}
    resnet = listed["resnet18"]
    assert resnet["source"] == "torchvision" and resnet["present"] is False
    assert resnet["bytes"] is None and resnet["sha256"] is None
    assert str(roots["weights"] / RESNET18) in resnet["looked_in"]
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints" / RESNET18) in resnet["looked_in"]
    assert any(c.startswith("curl -L -o resnet18-f37072fd.pth https://download.pytorch.org/")
               for c in resnet["how_to_provide"]["commands"])  # fmt: skip
    dino = listed["dinov3_vit_small"]
    assert dino["source"] == "huggingface"
    assert any("models--facebook--dinov3-vits16-pretrain-lvd1689m" in p for p in dino["looked_in"])
    assert any("hf download facebook/dinov3-vits16-pretrain-lvd1689m" in c
               for c in dino["how_to_provide"]["commands"])  # fmt: skip
    assert listed["small_cnn"]["how_to_provide"]["available"] is False
    detection = wclient.get("/api/weights", params={"task": "detection"}).json()["items"]
    assert {r["model_id"] for r in detection} == {m.id for m in list_models("detection")}
    assert_api_error(wclient.get("/api/weights", params={"task": "nope"}), 422, "unknown_task_type")
    # A file in STUDIO_WEIGHTS_DIR (published name) is found, sized and hashed.
    data = b"not really weights, but the listing only looks"
    (roots["weights"] / RESNET18).write_bytes(data)
    found = rows(wclient)["resnet18"]
    assert found["present"] is True and found["found_in"] == "STUDIO_WEIGHTS_DIR"
    assert found["bytes"] == len(data) and found["sha256"] == hashlib.sha256(data).hexdigest()
    # A detector without its own COCO file starts from its backbone's ImageNet weights.
    (roots["weights"] / "resnet50.pth").write_bytes(data)
    detector = rows(wclient)["fasterrcnn_resnet50_fpn"]
    assert detector["present"] is True and detector["backbone_only"] is True


def tensors_file(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


# Model building is database-agnostic; the other weights API tests run on both databases.
@pytest.mark.sqlite_only
def test_a_file_that_does_not_match_the_architecture_is_refused_by_name(
    wclient: TestClient, settings: Settings
) -> None:
    data = tensors_file({"conv1.weight": torch.zeros(64, 3, 3, 3), "extra.bias": torch.zeros(2)})
    response = wclient.post(
        "/api/weights",
        data={"model_id": "resnet18"},
        files={"file": ("resnet18.pth", data, "application/octet-stream")},
    )
    body = assert_api_error(response, 422, "weights_mismatch")
    message = body["message"]
    assert "missing tensors" in message and "unexpected tensors: extra.bias" in message
    assert "conv1.weight: file (64, 3, 3, 3), model (64, 3, 7, 7)" in message
    assert not (Storage(settings.workspace_dir).weights_dir / "resnet18.pth").exists()
    assert rows(wclient)["resnet18"]["present"] is False
    # Not tensors at all (a pickle of something else is refused by weights_only too).
    response = wclient.post(
        "/api/weights",
        data={"model_id": "resnet18"},
        files={"file": ("resnet18.pth", b"garbage", "application/octet-stream")},
    )
    assert (
        "cannot be read as tensors"
        in assert_api_error(response, 422, "weights_mismatch")["message"]
    )


def test_bad_requests_are_4xx(wclient: TestClient, roots: dict[str, Path], tmp_path: Path) -> None:
    small = {"file": ("w.pth", b"x", "application/octet-stream")}
    assert_api_error(
        wclient.post("/api/weights", data={"model_id": "small_cnn"}, files=small),
        422,
        "no_pretrained_weights",
    )
    assert_api_error(
        wclient.post("/api/weights", data={"model_id": "nope"}, files=small), 422, "unknown_model"
    )
    assert_api_error(
        wclient.post(
            "/api/weights",
            data={"model_id": "resnet18"},
            files={"file": ("w.txt", b"x", "text/plain")},
        ),
        422,
        "weights_bad_file",
    )
    outside = tmp_path / "elsewhere.pth"
    outside.write_bytes(b"x")
    for path in (str(outside), "../elsewhere.pth", "missing.pth"):
        response = wclient.post("/api/weights", json={"model_id": "resnet18", "path": path})
        assert_api_error(response, 400, "path_not_allowed")
    assert_api_error(wclient.post("/api/weights", json={"path": "x"}), 422, "validation_error")


def test_matching_weights_from_a_server_file_are_verified_and_stored_with_their_hash(
    wclient: TestClient, roots: dict[str, Path], settings: Settings
) -> None:
    import torchvision

    data = tensors_file(torchvision.models.mobilenet_v3_small(weights=None).state_dict())
    (roots["import"] / "mnv3.pt").write_bytes(data)
    response = wclient.post(
        "/api/weights", json={"model_id": "mobilenet_v3_small", "path": "mnv3.pt"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    digest = hashlib.sha256(data).hexdigest()
    stored = Storage(settings.workspace_dir).weights_dir / "mobilenet_v3_small.pt"
    assert body["present"] and body["found_in"] == "studio" and body["file"] == str(stored)
    assert body["sha256"] == digest and body["verified"]["ok"] is True
    assert stored.read_bytes() == data
    assert (stored.parent / "mobilenet_v3_small.pt.sha256").read_text().split()[0] == digest
    assert rows(wclient)["mobilenet_v3_small"]["sha256"] == digest


def test_required_weights_that_are_absent_fail_before_any_job(
    wclient: TestClient,
    project: Project,
    split_id: int,
    roots: dict[str, Path],
    session: Session,
) -> None:
    url = f"/api/projects/{project.id}/experiments"
    body = {"name": "needs", "split_id": split_id, "model": "resnet18", "pretrained": "required"}
    refused = assert_api_error(wclient.post(url, json=body), 422, "weights_missing")
    assert RESNET18 in refused["message"]
    assert str(roots["weights"]) in refused["message"]
    assert refused["details"]["how_to_provide"]["file_name"] == RESNET18
    (roots["weights"] / RESNET18).write_bytes(b"present")
    created = wclient.post(url, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["config"]["pretrained"] == "required"
    (roots["weights"] / RESNET18).unlink()  # gone between creation and start
    started = wclient.post(f"{url}/{created.json()['id']}/train")
    assert_api_error(started, 422, "weights_missing")
    assert session.exec(select(Job)).all() == []
    # Older recipes said true/false.
    legacy = wclient.post(url, json={"name": "old", "split_id": split_id, "pretrained": False})
    assert legacy.json()["config"]["pretrained"] == "none"
    assert_api_error(
        wclient.post(url, json={"name": "bad", "split_id": split_id, "pretrained": "maybe"}),
        422,
        "invalid_hyperparameters",
    )


def test_dinov3_in_the_catalog_with_its_constraints(
    wclient: TestClient, project: Project, split_id: int
) -> None:
    models = {
        m["id"]: m
        for m in wclient.get("/api/catalog/models", params={"task": "classification"}).json()[
            "items"
        ]
    }
    for model_id in ("dinov3_vit_small", "dinov3_vit_large", "dinov3_convnext_base"):
        assert models[model_id]["mean"] == [0.485, 0.456, 0.406]
        assert models[model_id]["frozen_by_default"] is True
    assert models["dinov3_vit_base"]["size_multiple"] == 16
    assert models["dinov3_convnext_small"]["size_multiple"] == 32
    url = f"/api/projects/{project.id}/experiments"
    vit = wclient.post(
        url, json={"name": "v", "split_id": split_id, "model": "dinov3_vit_small", "image_size": 50}
    ).json()
    assert vit["config"]["image_size"] == 64 and vit["config"]["freeze_backbone"] is True
    unfrozen = wclient.post(
        url,
        json={"name": "c", "split_id": split_id, "model": "dinov3_convnext_small",
              "image_size": 70, "freeze_backbone": False},
    ).json()  # fmt: skip
    assert unfrozen["config"]["image_size"] == 96 and unfrozen["config"]["freeze_backbone"] is False
    resnet = wclient.post(url, json={"name": "r", "split_id": split_id, "model": "resnet18"})
    assert resnet.json()["config"]["freeze_backbone"] is False


def test_dinov3_models_listed_for_every_task_they_serve(wclient: TestClient) -> None:
    def listed(task: str) -> dict[str, dict]:  # type: ignore[type-arg]
        body = wclient.get("/api/catalog/models", params={"task": task}).json()
        return {m["id"]: m for m in body["items"]}

    expected = {
        "classification": "dinov3_convnext_small",
        "regression": "dinov3_convnext_small",
        "detection": "dinov3_convnext_small",
        "segmentation": "deeplabv3plus_dinov3_convnext_small",
        "anomaly": "patchcore_dinov3_convnext_small",
    }
    for task, model_id in expected.items():
        model = listed(task)[model_id]
        assert (model["size_multiple"], model["frozen_by_default"]) == (32, True), task
        assert model["mean"] == [0.485, 0.456, 0.406] and model["min_image_size"] == 64
    backbone = listed("classification")["dinov3_vit_small"]
    assert backbone["feature_kinds"] == ["embedding", "dense", "memory"]
    anomaly = listed("anomaly")
    # offered only with the backbone's weights (no worker has looked here yet)
    assert (
        "needs pretrained dinov3_vit_small weights"
        in anomaly["padim_dinov3_vit_small"]["unavailable"]
    )
