"""Experiments API: create with defaults, validation of every hyperparameter, CRUD, 409s."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from app.catalog import list_models
from app.models import Job, Project
from app.storage import Storage
from tests.factories import make_project
from tests.helpers import assert_api_error


def url(project: Project, suffix: str = "") -> str:
    return f"/api/projects/{project.id}/experiments{suffix}"


def create(client: TestClient, project: Project, split_id: int, **body: Any) -> Any:
    return client.post(url(project), json={"name": "baseline", "split_id": split_id, **body})


def test_create_uses_task_defaults_and_overrides(
    client: TestClient, project: Project, split_id: int
) -> None:
    response = create(client, project, split_id, epochs=3, augment={"hflip": True})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "created"
    assert body["model_id"] == "small_cnn"
    config = body["config"]
    assert config["epochs"] == 3
    assert config["image_size"] == 32  # the model's default size
    assert config["augment"]["hflip"] is True
    assert config["augment"]["rotation"] == 10.0  # untouched default kept
    assert config["optimizer"] == "adamw"
    listed = client.get(url(project)).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["id"]
    assert client.get(url(project, f"/{body['id']}")).json()["name"] == "baseline"


def test_other_model_gets_its_default_image_size(
    client: TestClient, project: Project, split_id: int
) -> None:
    body = create(client, project, split_id, model="efficientnet_b3").json()
    assert body["config"]["image_size"] == 300


BAD_VALUES = [
    ("model", "resnet9000", "unknown_model"),
    ("pretrained", "maybe", None),
    ("optimizer", "adam", None),
    ("lr", 0, None),
    ("lr", 11, None),
    ("weight_decay", -0.1, None),
    ("momentum", 1.0, None),
    ("scheduler", "linear", None),
    ("warmup_epochs", -1, None),
    ("step_size", 0, None),
    ("gamma", 0, None),
    ("epochs", 0, None),
    ("epochs", 1001, None),
    ("batch_size", 0, None),
    ("image_size", 8, None),
    ("image_size", 4096, None),
    ("label_smoothing", 1.0, None),
    ("augment", {"rotation": 181}, None),
    ("augment", {"color_jitter": 2}, None),
    ("augment", {"mixup_alpha": -1}, None),
    ("augment", {"cutmix_alpha": 11}, None),
    ("augment", {"hflip": "sometimes"}, None),
    ("augment", {"vflip": []}, None),
    ("augment", {"random_resized_crop": "yes please"}, None),
    ("augment", {"sharpen": True}, None),
    ("early_stopping_patience", -1, None),
    ("accumulate_grad_batches", 0, None),
    ("mixed_precision", "fp8", None),
    ("ema", "on", None),
    ("ema_decay", 0.5, None),
    ("freeze_backbone", "head", None),
    ("seed", -1, None),
    ("deterministic", "kinda", None),
    ("num_workers", 33, None),
    ("multi_label", "both", None),
    ("tune_thresholds", "x", None),
    ("learning_rate", 0.1, None),
]


@pytest.mark.parametrize(("field", "value", "code"), BAD_VALUES, ids=lambda v: str(v)[:20])
def test_every_hyperparameter_is_validated_with_a_helpful_message(
    client: TestClient, project: Project, split_id: int, field: str, value: Any, code: str | None
) -> None:
    error = assert_api_error(
        create(client, project, split_id, **{field: value}), 422, code or "invalid_hyperparameters"
    )
    assert field in error["message"]
    if code is None:
        assert any(f["field"].split(".")[0] == field for f in error["details"]["fields"])
    assert client.get(url(project)).json()["total"] == 0


def test_dual_head_phases_take_a_patience(
    client: TestClient, project: Project, split_id: int
) -> None:
    body = create(client, project, split_id, model="dualhead_small_cnn").json()
    assert [p["patience"] for p in body["config"]["dual_head"]["phases"]] == [5, 5, 3]  # seed §14
    phase = {"name": "A", "epochs": 2, "lr_backbone": 0, "lr_seg": 0.001, "lr_cls": 0,
             "lambda_seg": 1, "lambda_cls": 0}  # fmt: skip
    made = create(
        client, project, split_id, name="p", model="dualhead_small_cnn",
        dual_head={"phases": [{**phase, "patience": 1}, phase]},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assert [p["patience"] for p in made.json()["config"]["dual_head"]["phases"]] == [1, 0]
    for bad in (-1, 1.5, "soon"):
        error = assert_api_error(
            create(
                client, project, split_id, name="q", model="dualhead_small_cnn",
                dual_head={"phases": [{**phase, "patience": bad}]},
            ),
            422,
            "invalid_hyperparameters",
        )  # fmt: skip
        assert "patience" in str(error["details"])


def test_warmup_must_be_shorter_than_training(
    client: TestClient, project: Project, split_id: int
) -> None:
    error = assert_api_error(
        create(client, project, split_id, epochs=2, warmup_epochs=2), 422, "invalid_hyperparameters"
    )
    assert "warmup_epochs" in error["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "", "split_id": 1}, "invalid_experiment"),
        ({"name": "x"}, "invalid_experiment"),
        ({"name": "x", "split_id": "one"}, "invalid_experiment"),
        ({"name": "x", "split_id": 999999}, "unknown_split"),
    ],
)
def test_invalid_experiment_fields(
    client: TestClient, project: Project, split_id: int, body: dict[str, Any], code: str
) -> None:
    assert_api_error(client.post(url(project), json=body), 422, code)


def test_body_must_be_an_object(client: TestClient, project: Project) -> None:
    assert_api_error(client.post(url(project), json=[1, 2]), 422, "invalid_body")


def test_split_of_another_project_is_refused(
    client: TestClient, session: Session, project: Project, split_id: int
) -> None:
    other = make_project(session)
    assert_api_error(create(client, other, split_id), 422, "unknown_split")


def test_duplicate_name_is_a_conflict(client: TestClient, project: Project, split_id: int) -> None:
    assert create(client, project, split_id).status_code == 201
    assert_api_error(create(client, project, split_id), 409, "experiment_exists")


def test_untrainable_task_answers_409(
    client: TestClient, session: Session, sketch_task: str
) -> None:
    sketch = make_project(session, task_type=sketch_task)
    response = client.post(url(sketch), json={"name": "x", "split_id": 1})
    assert_api_error(response, 409, "task_not_trainable")


def test_patch_config_only_while_never_trained(
    client: TestClient, session: Session, project: Project, split_id: int
) -> None:
    eid = create(client, project, split_id).json()["id"]
    response = client.patch(url(project, f"/{eid}"), json={"epochs": 7, "model": "resnet18"})
    assert response.status_code == 200, response.text
    assert response.json()["config"]["epochs"] == 7
    assert response.json()["config"]["image_size"] == 224
    assert_api_error(
        client.patch(url(project, f"/{eid}"), json={"lr": -1}), 422, "invalid_hyperparameters"
    )
    assert client.post(url(project, f"/{eid}/train")).status_code == 202
    assert_api_error(
        client.patch(url(project, f"/{eid}"), json={"epochs": 9}), 409, "experiment_config_locked"
    )
    renamed = client.patch(url(project, f"/{eid}"), json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"


def test_train_queues_one_job_and_refuses_a_second(
    client: TestClient, session: Session, project: Project, split_id: int
) -> None:
    eid = create(client, project, split_id).json()["id"]
    response = client.post(url(project, f"/{eid}/train"))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["job"]["kind"] == "train" and body["job"]["status"] == "queued"
    assert body["experiment"]["status"] == "queued"
    assert body["experiment"]["job_id"] == body["job"]["id"]
    assert_api_error(client.post(url(project, f"/{eid}/train")), 409, "experiment_running")
    assert_api_error(client.delete(url(project, f"/{eid}")), 409, "experiment_running")
    # Stopping a queued run cancels its job at once; never trained -> back to created.
    stopped = client.post(url(project, f"/{eid}/stop"))
    assert stopped.status_code == 202 and stopped.json()["status"] == "created"
    job = session.get(Job, body["job"]["id"])
    session.refresh(job)
    assert job is not None and job.status == "cancelled"
    assert_api_error(client.post(url(project, f"/{eid}/stop")), 409, "experiment_not_running")
    assert_api_error(client.post(url(project, f"/{eid}/resume")), 409, "nothing_to_resume")


def test_train_body_is_checked(client: TestClient, project: Project, split_id: int) -> None:
    eid = create(client, project, split_id).json()["id"]
    assert_api_error(
        client.post(url(project, f"/{eid}/train"), json={"resume": "yes"}), 422, "invalid_body"
    )
    assert_api_error(
        client.post(url(project, f"/{eid}/train"), json={"speed": 2}), 422, "invalid_body"
    )
    assert_api_error(
        client.post(url(project, f"/{eid}/train"), json={"epochs": 0}), 422, "invalid_epochs"
    )


def test_name_defaults_to_the_model_and_a_free_number(
    client: TestClient, project: Project, split_id: int
) -> None:
    first = client.post(url(project), json={"split_id": split_id})
    assert first.status_code == 201, first.text
    assert first.json()["name"] == "small_cnn-1"
    create(client, project, split_id, name="small_cnn-3")
    names = [client.post(url(project), json={"split_id": split_id}).json()["name"] for _ in "ab"]
    assert names == ["small_cnn-4", "small_cnn-5"]  # 3 taken by hand, 2 in use: the next free
    error = assert_api_error(create(client, project, split_id, name=""), 422, "invalid_experiment")
    assert error["details"]["fields"][0]["message"] == "Name is required"


def test_claimed_job_makes_the_experiment_running_and_stop_cancels_the_job(
    client: TestClient, session: Session, project: Project, split_id: int
) -> None:
    """The header (experiment) and the job card (job) agree from the claim on; a stop asks the
    running job to cancel, so it can never end as "succeeded"."""
    from app.services import jobs as job_service

    eid = create(client, project, split_id).json()["id"]
    job_id = client.post(url(project, f"/{eid}/train")).json()["job"]["id"]
    claimed = job_service.claim_next_job(session, queue="compute")
    assert claimed is not None and claimed.id == job_id
    running = client.get(url(project, f"/{eid}")).json()
    assert running["status"] == "running" and running["started_at"] is not None
    assert client.post(url(project, f"/{eid}/stop")).json()["status"] == "stopping"
    session.expire_all()
    job = session.get(Job, job_id)
    assert job is not None and job.status == "running" and job.cancel_requested


def test_job_ending_without_a_word_makes_the_experiment_interrupted(
    client: TestClient, session: Session, project: Project, split_id: int
) -> None:
    eid = create(client, project, split_id).json()["id"]
    job_id = client.post(url(project, f"/{eid}/train")).json()["job"]["id"]
    job = session.get(Job, job_id)
    assert job is not None
    job.status = "interrupted"
    session.add(job)
    session.commit()
    assert client.get(url(project, f"/{eid}")).json()["status"] == "interrupted"


def test_delete_removes_row_and_files(
    client: TestClient, storage: Storage, project: Project, split_id: int
) -> None:
    eid = create(client, project, split_id).json()["id"]
    folder = storage.experiment_dir(project.id, eid)  # type: ignore[arg-type]
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"x")
    assert client.delete(url(project, f"/{eid}")).status_code == 204
    assert not folder.exists()
    assert_api_error(client.get(url(project, f"/{eid}")), 404, "experiment_not_found")


def test_metrics_and_checkpoints_of_a_new_experiment_are_empty(
    client: TestClient, project: Project, split_id: int
) -> None:
    eid = create(client, project, split_id).json()["id"]
    assert_api_error(client.get(url(project, f"/{eid}/events")), 404, "no_training_job")
    job_id = client.post(url(project, f"/{eid}/train")).json()["job"]["id"]
    moved = client.get(url(project, f"/{eid}/events"), follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == f"/api/jobs/{job_id}/events"
    client.post(url(project, f"/{eid}/stop"))
    assert client.get(url(project, f"/{eid}/metrics")).json()["series"] == {}
    assert client.get(url(project, f"/{eid}/checkpoints")).json()["items"] == []


def test_catalog_lists_every_model_and_tasks_report_train(
    client: TestClient, sketch_task: str
) -> None:
    body = client.get("/api/catalog/models?task=classification").json()
    ids = {m["id"] for m in body["items"]}
    assert ids == {m.id for m in list_models("classification")}
    backbones = {
        "small_cnn",
        "resnet18",
        "resnet34",
        "resnet50",
        "efficientnet_b0",
        "efficientnet_b3",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
        "dinov3_vit_small",
        "dinov3_vit_base",
        "dinov3_vit_large",
        "dinov3_convnext_small",
        "dinov3_convnext_base",
        "dinov3_convnext_large",
    }
    # every backbone also as a dual-head (classification + segmentation) model
    dual = {f"dualhead_{b}" for b in backbones}
    assert all(
        m["heads"] == ["classification", "segmentation"] for m in body["items"] if m["id"] in dual
    )
    assert {*backbones, *dual} == ids
    detectors = {m["id"] for m in client.get("/api/catalog/models?task=detection").json()["items"]}
    assert {"fcos_small", "fasterrcnn_resnet50_fpn", "ssdlite320_mobilenet_v3_large"} <= detectors
    # Only the DINOv3 backbones serve both tasks (a classifier head or a pyramid + FCOS).
    assert ids & detectors == {i for i in ids if i.startswith("dinov3_")}
    assert_api_error(client.get("/api/catalog/models?task=nope"), 422, "unknown_task_type")
    tasks = {t["key"]: t for t in client.get("/api/tasks").json()["items"]}
    assert tasks["classification"]["features"]["train"] is True
    assert tasks["detection"]["features"]["train"] is True
    assert tasks[sketch_task]["features"]["train"] is False
    assert (
        tasks["detection"]["summary_metric"] == "map50"
        and tasks["detection"]["metric_mode"] == "max"
    )
    hyper = client.get("/api/catalog/hyperparameters?task=classification").json()
    # The task's recipe over the field defaults, as experiments get it.
    assert hyper["defaults"]["epochs"] == 20 and hyper["defaults"]["augment"]["mixup_alpha"] == 0.2
    assert "lr" in hyper["schema"]["properties"]
    det = client.get("/api/catalog/hyperparameters?task=detection").json()
    assert det["defaults"]["model"] == "fcos_small" and det["defaults"]["score_threshold"] == 0.25
    assert det["schema"]["properties"]["nms_iou"]["group"] == "task"
    assert "label_smoothing" not in det["schema"]["properties"]
    assert_api_error(
        client.get(f"/api/catalog/hyperparameters?task={sketch_task}"), 409, "task_not_trainable"
    )
