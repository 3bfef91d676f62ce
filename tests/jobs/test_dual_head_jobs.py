"""A tiny dual-head experiment end to end in real worker processes: class folders with
per-channel masks imported, three phases trained (phase marks on the chart), evaluation with
segmentation and gate figures, the gate's rules read and edited, a gate test set with a
non-image in it, ONNX export of both heads with the gate in its metadata, and predictions
with the gate's verdict (and without it, gate=off)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.storage import Storage
from benchmarks.synthetic.dual_head import write_dual_head
from tests.factories import make_project
from tests.helpers import assert_api_error
from tests.importers.builders import import_folder
from tests.jobs.conftest import PoolRunner
from tests.jobs.test_export_jobs import wait_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PHASES = [
    {"name": "A", "epochs": 1, "lr_backbone": 0, "lr_seg": 0.003, "lr_cls": 0,
     "lambda_seg": 1, "lambda_cls": 0},
    {"name": "B", "epochs": 1, "lr_backbone": 0.001, "lr_seg": 0.001, "lr_cls": 0.003,
     "lambda_seg": 0.4, "lambda_cls": 0.6},
    {"name": "C", "epochs": 1, "lr_backbone": 0.0001, "lr_seg": 0, "lr_cls": 0.003,
     "lambda_seg": 0, "lambda_cls": 1},
]  # fmt: skip


def test_dual_head_experiment_trains_in_phases_evaluates_and_exports(
    session: Session,
    engine: Engine,
    storage: Storage,
    client: TestClient,
    pool: PoolRunner,
    tmp_path: Path,
) -> None:
    models = client.get("/api/catalog/models", params={"task": "classification"}).json()
    listed = models["items"] if isinstance(models, dict) else models
    dual = [m for m in listed if m["id"] == "dualhead_small_cnn"]
    assert dual and dual[0]["heads"] == ["classification", "segmentation"]

    project = make_project(session, name="Leaves")
    pid = project.id
    assert pid is not None
    write_dual_head(tmp_path, images=30, size=32, ood=4)
    assert import_folder(session, engine, storage, pid, tmp_path / "data").status == "succeeded"
    classes = client.get(f"/api/projects/{pid}/classes").json()
    names = {c["name"] for c in (classes["items"] if isinstance(classes, dict) else classes)}
    assert names == {"healthy", "spot", "streak", "wilt", "whip"}  # channels are no classes
    split = client.post(
        f"/api/projects/{pid}/splits",
        json={"name": "main", "ratios": {"train": 0.6, "val": 0.2, "test": 0.2}},
    ).json()
    created = client.post(
        f"/api/projects/{pid}/experiments",
        json={
            "name": "dual",
            "split_id": split["id"],
            "model": "dualhead_small_cnn",
            "image_size": 32,
            "batch_size": 8,
            "dual_head": {"phases": PHASES, "decoder_channels": 16},
        },
    )
    assert created.status_code == 201, created.text
    eid = created.json()["id"]
    base = f"/api/projects/{pid}/experiments/{eid}"
    job = client.post(f"{base}/train").json()["job"]
    wait_job(session, job["id"])
    experiment = client.get(base).json()
    assert experiment["status"] == "completed" and experiment["epochs_done"] == 3, experiment
    # phase A freezes a backbone that has no pretrained weights here: the record says so
    assert any("keeps the backbone frozen" in n for n in experiment["provenance"]["notes"])
    series = client.get(f"{base}/metrics").json()["series"]
    assert [p["value"] for p in series["val/stage"]] == [1.0, 2.0, 3.0]
    assert len(series["train/seg_loss"]) == 3 and len(series["val/seg_miou"]) == 3
    listed = client.get(f"{base}/checkpoints").json()["items"]
    by_name = {c["name"]: c["epoch"] for c in listed}
    assert [c["name"] for c in listed][:2] == ["best", "last"]
    assert {k: by_name.get(k) for k in ("best-1-A", "best-2-B", "best-3-C")} == {
        "best-1-A": 1, "best-2-B": 2, "best-3-C": 3
    }  # fmt: skip

    started = client.post(f"{base}/evaluation", json={"subsets": ["val", "test"]})
    assert started.status_code == 202, started.text
    wait_job(session, started.json()["job"]["id"])
    aggregate = client.get(f"{base}/evaluation").json()["aggregate"]
    assert 0.0 <= aggregate["accuracy"] <= 1.0
    assert 0.0 <= aggregate["seg_miou"] <= 1.0
    assert set(aggregate["per_channel_iou"]) <= {"tissue", "structural", "surface", "degradation"}
    gate = aggregate["gate"]
    assert gate["calibration_subset"] == "val"
    assert set(gate["calibration"]["per_class"]) <= {"healthy", "spot", "streak", "wilt", "whip"}
    in_domain = gate["in_domain"]
    assert in_domain["images"] == aggregate["by_subset"]["test"]["samples"] > 0
    assert 0.0 <= in_domain["pass_rate"] <= 1.0
    # the familiarity rule is calibrated against the training images' embeddings
    reference = gate["rules"]["feature_reference"]
    train_classes = {c for c in names}  # 18 training images cover the five classes
    assert set(reference["classes"]) <= train_classes and reference["classes"]
    assert len(reference["scale"]) == len(reference["means"][0]) > 0
    familiarity = gate["calibration"]["feature_distance"]
    assert gate["rules"]["max_feature_distance"] == familiarity["max"] * 1.25 > 0
    assert set(gate["rules"]["max_ratio"]) == set(gate["rules"]["min_ratio"])

    exported = client.post(f"{base}/exports", json={"format": "onnx", "checkpoint": "best"})
    assert exported.status_code == 202, exported.text
    wait_job(session, exported.json()["job"]["id"])
    record = client.get(f"{base}/exports").json()["items"][0]
    assert record["status"] == "completed" and record["valid"] is True, record["validation"]

    assert record["metadata"]["segmentation"]["channels"] == [
        "degradation", "structural", "surface", "tissue"
    ]  # fmt: skip
    assert record["metadata"]["outputs"] == ["logits", "masks", "embedding"]
    assert record["metadata"]["gate"]["min_ratio"] == gate["rules"]["min_ratio"]
    assert record["metadata"]["gate"]["feature_reference"] == reference

    gate_url = f"{base}/gate"
    read = client.get(gate_url).json()
    assert read["rules"]["default_min_ratio"] == 0.15 and not read["changed"]
    assert read["in_domain"]["pass_rate"] == in_domain["pass_rate"]
    assert_api_error(client.patch(gate_url, json={"default_min_ratio": 3}), 422, "invalid_gate")
    assert_api_error(client.patch(gate_url, json={"bogus": 1}), 422, "invalid_gate")
    # the reference is measured, never typed in; the API shows a summary of it
    assert_api_error(
        client.patch(gate_url, json={"feature_reference": {"means": [[0]]}}), 422, "invalid_gate"
    )
    assert read["rules"]["feature_reference"] == {
        "classes": reference["classes"], "dimensions": len(reference["scale"])
    }  # fmt: skip
    edited = client.patch(gate_url, json={"default_min_ratio": 0.2, "min_component_px": 300})
    assert edited.status_code == 200, edited.text
    assert edited.json()["rules"]["default_min_ratio"] == 0.2 and edited.json()["changed"]

    ood = sorted((tmp_path / "ood").iterdir())
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(ood[0], "inside/first.png")
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in ood[1:]]
    files.append(("files", ("set.zip", archive.getvalue(), "application/zip")))
    files.append(("files", ("notes.txt", b"not an image", "text/plain")))
    started = client.post(f"{gate_url}/test-set", files=files)
    assert started.status_code == 202, started.text
    wait_job(session, started.json()["job"]["id"])
    out = client.get(gate_url).json()["out_of_domain"]
    assert out["images"] == len(ood) and 0.0 <= out["rejection_rate"] <= 1.0
    assert [e["file"] for e in out["errors"]] == ["notes.txt"]
    assert out["rejected"] == len(out["rejected_examples"])

    # the plain example script applies the gate from the export's metadata (rules at export)
    model_path = tmp_path / "model.onnx"
    model_path.write_bytes(client.get(record["download_url"]).content)
    leaf = next((tmp_path / "data" / "spot").iterdir())
    run = subprocess.run(
        [sys.executable, "-I", str(Path(__file__).resolve().parents[2] / "examples" /
         "predict_onnx.py"), str(model_path), str(leaf), str(ood[0]), "--json"],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    scripted = {Path(p["image"]).name: p for p in json.loads(run.stdout)["predictions"]}
    studio = client.post(
        f"/api/projects/{pid}/predict",
        data={"gate": "off"},
        files=[("files", (p.name, p.read_bytes(), "image/png")) for p in (leaf, ood[0])],
    ).json()["results"]
    for result in studio:
        mine = scripted[result["file"]]
        assert abs(mine["gate"]["foreground_ratio"] - result["gate"]["foreground_ratio"]) < 1e-6
        assert mine["gate"]["largest_component"] == result["gate"]["largest_component"]
        assert mine["gate"]["feature_distance"] == pytest.approx(
            result["gate"]["feature_distance"], rel=1e-3
        )
        assert (mine["class"] is None) == (not mine["gate"]["passed"])

    for mode in ("on", "off"):
        answer = client.post(
            f"/api/projects/{pid}/predict",
            data={"gate": mode},
            files=[
                ("files", ("leaf.png", leaf.read_bytes(), "image/png")),
                ("files", ("noise.png", ood[0].read_bytes(), "image/png")),
            ],
        )
        assert answer.status_code == 200, answer.text
        for result in answer.json()["results"]:
            decided = result["gate"]
            assert set(decided) >= {"passed", "foreground_ratio", "largest_component", "reason"}
            assert decided["threshold"] in (0.2, *read["rules"]["min_ratio"].values())
            assert result["mask"]["width"] == 32 and len(result["top"]) == 5
            if mode == "on" and not decided["passed"]:
                assert result["labels"] == []
            else:
                assert len(result["labels"]) == 1
    assert_api_error(
        client.post(
            f"/api/projects/{pid}/predict",
            data={"gate": "maybe"},
            files=[("files", ("leaf.png", leaf.read_bytes(), "image/png"))],
        ),
        422,
        "validation_error",
    )
