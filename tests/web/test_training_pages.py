"""Training pages: form with defaults and help, create via form, errors in place, detail,
compare with a config diff, actions."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Project
from app.storage import Storage
from tests.factories import make_image, make_split

HTMX = {"HX-Request": "true"}


def make_data(session: Session, storage: Storage, project: Project) -> int:
    assert project.id is not None
    images = [make_image(session, storage, project.id, labels=[c]) for c in "abab"]
    split = make_split(session, project.id, images, ratios=(0.5, 0.25, 0.25), name="main")
    assert split.id is not None
    return split.id


def form(split_id: int, **extra: str) -> dict[str, str]:
    data = {
        "name": "baseline",
        "split_id": str(split_id),
        "model": "small_cnn",
        "epochs": "3",
        "batch_size": "16",
        "lr": "0.003",
        "optimizer": "adamw",
        "scheduler": "cosine",
        "image_size": "",
        "warmup_epochs": "1",
        "augment_rotation": "10",
        "augment_hflip": "on",
        "deterministic": "on",
        "pretrained": "auto",
    }
    data.update(extra)
    return data


def test_page_without_splits_says_what_to_do(client: TestClient, project: Project) -> None:
    page = client.get(f"/projects/{project.id}/training")
    assert page.status_code == 200
    assert 'data-testid="no-splits"' in page.text
    assert f'href="/projects/{project.id}/training"' in page.text  # in the project nav


def test_form_shows_defaults_help_and_catalog(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    make_data(session, storage, project)
    page = client.get(f"/projects/{project.id}/training").text
    assert 'data-testid="experiment-form"' in page
    assert "Training epochs (1-1000)." in page  # help text from the pydantic model
    # Number inputs carry the model's bounds (whole numbers step by 1) and the form leaves
    # judging them to the server, which names the field in plain words. The form starts from
    # the task's recipe, the same the API applies.
    assert re.search(
        r'name="epochs" type="number" step="1" value="20"[^>]*min="1"[^>]*max="1000"', page
    )
    assert re.search(r'name="augment_mixup_alpha" type="number"[^>]*value="0.2"', page)
    assert re.search(r'name="lr" type="number" step="any"[^>]*min="0"[^>]*max="10"', page)
    assert "novalidate" in page
    for model_id in ("small_cnn", "resnet50", "mobilenet_v3_large", "efficientnet_b3"):
        assert f'value="{model_id}"' in page
    assert "No experiments yet" in page


def test_create_via_form_redirects_to_the_experiment(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    split_id = make_data(session, storage, project)
    response = client.post(
        f"/projects/{project.id}/training/experiments", data=form(split_id), headers=HTMX
    )
    assert response.status_code == 204, response.text
    location = response.headers["HX-Redirect"]
    experiment = client.get(f"/api/projects/{project.id}/experiments").json()["items"][0]
    assert location == f"/projects/{project.id}/training/{experiment['id']}"
    assert experiment["config"]["epochs"] == 3
    assert experiment["config"]["augment"]["hflip"] is True
    assert experiment["config"]["augment"]["vflip"] is False
    assert experiment["config"]["image_size"] == 32
    page = client.get(location).text
    assert 'data-testid="train"' in page and "baseline" in page
    assert 'data-testid="chart-loss"' in page


def test_form_errors_show_in_place(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    split_id = make_data(session, storage, project)
    response = client.post(
        f"/projects/{project.id}/training/experiments",
        data=form(split_id, epochs="0", lr="fast"),
        headers={**HTMX, "X-Error-Target": "#experiment-form-error"},
    )
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#experiment-form-error"
    assert "lr" in response.text and "alert-error" in response.text
    response = client.post(
        f"/projects/{project.id}/training/experiments",
        data=form(split_id, epochs="0"),
        headers={**HTMX, "X-Error-Target": "#experiment-form-error"},
    )
    assert response.status_code == 422 and "epochs" in response.text


def test_actions_and_compare_with_config_diff(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    split_id = make_data(session, storage, project)
    for name, lr in (("a", "0.003"), ("b", "0.01")):
        client.post(
            f"/projects/{project.id}/training/experiments",
            data=form(split_id, name=name, lr=lr),
            headers=HTMX,
        )
    items = client.get(f"/api/projects/{project.id}/experiments").json()["items"]
    ids = sorted(e["id"] for e in items)
    listing = client.get(f"/projects/{project.id}/training").text
    assert listing.count('data-testid="experiment-row"') == 2
    assert 'data-testid="compare"' in listing
    page = client.get(f"/projects/{project.id}/training/compare?ids={ids[0]}&ids={ids[1]}")
    assert page.status_code == 200
    assert page.text.count('data-testid="diff-row"') == 1  # only lr differs
    assert "<td>lr</td>" in page.text
    one = client.get(f"/projects/{project.id}/training/compare?ids={ids[0]}", headers=HTMX)
    assert one.status_code == 422
    # train -> stop (queued: cancelled at once) -> delete
    response = client.post(f"/projects/{project.id}/training/{ids[0]}/train", headers=HTMX)
    assert response.status_code == 204 and response.headers["HX-Refresh"] == "true"
    again = client.post(
        f"/projects/{project.id}/training/{ids[0]}/train",
        headers={**HTMX, "X-Error-Target": "#experiment-action-error"},
    )
    assert again.status_code == 409 and "already" in again.text
    stopped = client.post(f"/projects/{project.id}/training/{ids[0]}/stop", headers=HTMX)
    assert stopped.status_code == 200 and 'data-status="created"' in stopped.text
    deleted = client.post(f"/projects/{project.id}/training/{ids[0]}/delete", headers=HTMX)
    assert deleted.status_code == 204
    assert client.get(f"/projects/{project.id}/training/{ids[0]}").status_code == 404


def test_form_shows_settings_only_where_they_apply(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    make_data(session, storage, project)
    page = client.get(f"/projects/{project.id}/training").text
    # momentum only with SGD, step size with the step schedule, EMA decay with EMA
    assert re.search(r"""x-show="applies\('momentum'\)">Momentum""", page)
    assert re.search(r"""x-show="applies\('step_size'\)">Step size""", page)
    assert re.search(r"""x-show="applies\('ema_decay'\)">Ema decay""", page)
    assert 'x-model="cfg.optimizer"' in page and 'x-model="cfg.ema"' in page
    assert re.search(r"data-cfg='{[^}]*\"optimizer\": \"adamw\"", page)
    assert '"momentum": ["optimizer", ["sgd"]]' in page


def test_a_completed_experiment_shows_the_task_s_test_metrics(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    from app.models import Experiment

    split_id = make_data(session, storage, project)
    client.post(
        f"/projects/{project.id}/training/experiments",
        data=form(split_id, name="done"),
        headers=HTMX,
    )
    experiment = session.exec(select(Experiment)).one()
    experiment.status = "completed"
    experiment.provenance = {
        "test_metrics": {"n": 5, "accuracy": 0.8, "f1_macro": 0.75, "loss": 0.5, "samples": 5}
    }
    session.add(experiment)
    session.commit()
    for url in (
        f"/projects/{project.id}/training/{experiment.id}",
        f"/projects/{project.id}/training/{experiment.id}/summary",
    ):
        page = client.get(url)
        assert page.status_code == 200, page.text
        assert re.search(
            r"Test \(5 images, best checkpoint\):\s+Accuracy <strong>0\.8000</strong>", page.text
        )
        assert "F1 (macro) 0.7500" in page.text
    listing = client.get(f"/projects/{project.id}/training").text
    assert "<th>Test Accuracy</th>" in listing and ">0.8000<" in listing


def test_compare_shows_differences_first_and_the_weights_actually_used(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    from app.models import Experiment

    split_id = make_data(session, storage, project)
    ids = []
    for name, weights in (("a", "pretrained:resnet18-f37072fd.pth"), ("b", "random-init")):
        body = {"name": name, "split_id": split_id, "model": "resnet18", "image_size": 32}
        eid = client.post(f"/api/projects/{project.id}/experiments", json=body).json()["id"]
        row = session.get(Experiment, eid)
        assert row is not None
        row.provenance = {"weights": weights}  # what a finished run records
        session.add(row)
        session.commit()
        ids.append(eid)
    page = client.get(f"/projects/{project.id}/training/compare?ids={ids[0]}&ids={ids[1]}").text
    differing = page.split('data-testid="same-settings"')[0]
    # Both asked for pretrained weights; only one got them: that is the difference shown.
    assert differing.count('data-testid="diff-row"') == 1 and "<td>pretrained</td>" in differing
    assert "used: pretrained (resnet18-f37072fd.pth)" in differing
    assert "used: random initialisation" in differing and "True" not in differing
    same = page.split('data-testid="same-settings"')[1]
    assert "<td>lr</td>" in same and "<td>momentum</td>" not in page  # momentum: SGD only


def test_form_knows_which_models_would_start_from_random_initialisation(
    client: TestClient, session: Session, storage: Storage, project: Project
) -> None:
    """The warning's inputs: per-model weights presence, per-split train sizes, photo-sized
    images (the digits here are 32 px, so no warning on this project)."""
    import html
    import json
    import re

    split_id = make_data(session, storage, project)
    page = client.get(f"/projects/{project.id}/training").text
    assert 'data-testid="random-init-warning"' in page and 'href="/weights"' in page
    hints = json.loads(html.unescape(re.search(r"data-hints='([^']*)'", page).group(1)))
    assert hints["weights"]["small_cnn"] is False and "dinov3_vit_small" in hints["weights"]
    assert hints["train"][str(split_id)] > 0 and hints["photos"] is False
    assert '<option value="required"' in page  # the pretrained choice


def test_segmentation_and_anomaly_forms_offer_the_dinov3_models(
    client: TestClient, session: Session, storage: Storage
) -> None:
    """DeepLabV3+ on DINOv3 is offered; PaDiM/PatchCore on DINOv3 are greyed out until a
    worker has found the backbone's weights."""
    from app.storage import atomic_write_json
    from tests.factories import make_project

    atomic_write_json(storage.hardware_path, {"cuda": False, "pretrained": ["dinov3_vit_small"]})
    for task, offered, greyed in (
        ("segmentation", "deeplabv3plus_dinov3_convnext_small", None),
        ("anomaly", "padim_dinov3_vit_small", "patchcore_dinov3_convnext_small"),
    ):
        project = make_project(session, name=f"DINOv3 {task}", task_type=task)
        assert project.id is not None
        images = [make_image(session, storage, project.id) for _ in range(4)]
        make_split(session, project.id, images, ratios=(0.5, 0.25, 0.25), name="main")
        page = client.get(f"/projects/{project.id}/training").text
        assert re.search(rf'<option value="{offered}"(?!\s+disabled)', page), task
        if greyed:
            assert re.search(rf'<option value="{greyed}"\s+disabled', page)
