"""DINOv3 on the dense and value tasks, end to end with the conformance workflow: import →
split → fit → evaluate → pages → ONNX export with parity (dynamic batch) → prediction.
STUDIO_DINOV3_ARCH=tiny builds two-layer / one-block-per-stage DINOv3 networks from
transformers' own code; the feature-memory anomaly methods find a weights file made for that
architecture (they are offered only with pretrained weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.storage import Storage
from tests.conformance.test_tasks import run_workflow

pytestmark = [pytest.mark.slow]

TINY = {"epochs": 1, "batch_size": 8, "warmup_epochs": 0}
CASES = [
    # the ViT's 1/16 patch grid through the simple pyramid into DeepLabV3+
    ("segmentation", {"model": "deeplabv3plus_dinov3_vit_small", "image_size": 32,
                      "decoder_channels": 16, "unfreeze_last_blocks": 1}),
    # ConvNeXt's four stages straight into the decoder
    ("segmentation", {"model": "deeplabv3plus_dinov3_convnext_small", "image_size": 64,
                      "decoder_channels": 16}),
    ("regression", {"model": "dinov3_vit_small", "image_size": 32, "unfreeze_last_blocks": 1}),
    ("anomaly", {"model": "patchcore_dinov3_vit_small", "image_size": 32}),
    # Mask R-CNN's slim heads on detection's DINOv3 pyramid (strides 8-32)
    ("instance_segmentation", {"model": "maskrcnn_dinov3_vit_small", "image_size": 64}),
    ("anomaly", {"model": "padim_dinov3_convnext_small", "image_size": 64}),
]  # fmt: skip


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("STUDIO_DINOV3_ARCH", "tiny")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("STUDIO_WEIGHTS_DIR", str(tmp_path / "weights"))
    return settings.model_copy(update={"import_roots": [tmp_path / "data"]})


def tiny_weights(folder: Path, model_id: str) -> Path:
    """A Hugging Face-style file (no `model.` prefix) for the tiny architecture."""
    from safetensors.torch import save_file

    from workers.ml.dinov3 import architecture, build_network

    state = build_network(architecture(model_id, "tiny")).state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_id}.safetensors"
    save_file({k.removeprefix("model."): v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.parametrize(("task", "recipe"), CASES, ids=[r["model"] for _, r in CASES])
def test_dinov3_runs_the_whole_workflow(
    task: str,
    recipe: dict[str, Any],
    tmp_path: Path,
    session: Session,
    storage: Storage,
    settings: Settings,
    engine: Engine,
    client: TestClient,
) -> None:
    from app.catalog import get_model

    spec = get_model(recipe["model"])
    weights = None
    if spec.requires_pretrained:
        weights = tiny_weights(tmp_path / "weights", spec.requires_pretrained)
    experiment = run_workflow(
        task, {**TINY, **recipe}, tmp_path, session, storage, settings, engine, client
    )
    provenance = experiment.provenance
    assert provenance["arch"]["scale"] == "tiny"
    assert provenance["mean"] == list(spec.mean) and spec.frozen_by_default
    assert provenance["config"]["freeze_backbone"] is True  # DINOv3's default
    if weights is not None:
        assert provenance["weights_used"]["file"] == str(weights)
        assert provenance["weights"] == f"pretrained:{weights.name}"


def test_dinov3_hierarchical_classifier_runs_the_whole_workflow(
    tmp_path: Path,
    session: Session,
    storage: Storage,
    settings: Settings,
    engine: Engine,
    client: TestClient,
) -> None:
    """Coarse and fine heads on the ViT's CLS token (taxonomy.csv import), gated export."""
    from app.models.split import SplitRequest
    from app.services import splits as split_service
    from benchmarks.synthetic.hierarchy import write_hierarchical
    from tests.factories import make_project
    from tests.importers.builders import import_folder

    data = tmp_path / "data" / "classification"
    write_hierarchical(data, images=36, size=48)
    project = make_project(session, name="Hierarchy")
    assert project.id is not None
    assert import_folder(session, engine, storage, project.id, data).status == "succeeded"
    (split,) = split_service.create_split(
        session,
        project.id,
        SplitRequest(name="main", ratios={"train": 0.6, "val": 0.2, "test": 0.2}, seed=0),
    )
    hierarchy = {"levels": ["coarse", "fine"], "gated_inference": True,
                 "curriculum": [{"level": "coarse", "epochs": 1, "lr": 0.003},
                                {"level": "fine", "epochs": 1, "lr": 0.003}]}  # fmt: skip
    recipe = {**TINY, "model": "dinov3_vit_small", "image_size": 32, "hierarchy": hierarchy,
              "unfreeze_last_blocks": 1}  # fmt: skip
    experiment = run_workflow(
        "classification", recipe, tmp_path, session, storage, settings, engine, client,
        imported=(project, split),
    )  # fmt: skip
    provenance = experiment.provenance
    assert provenance["arch"]["kind"] == "vit" and provenance["task_info"]["hierarchy"]
    assert provenance["config"]["freeze_backbone"] is True
