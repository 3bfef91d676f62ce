"""DINOv3 backbones (tiny random configurations of transformers' own code) behind the
backbone interface, head-only training with unfrozen last blocks, verification of weight
files, and the weights an experiment records."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from app.catalog import get_model
from tests.ml.test_training import config, run
from workers.ml.backbones import _TORCHVISION, build_backbone, torchvision_weight_names
from workers.ml.checkpoints import load_for_inference
from workers.ml.data import Sample
from workers.ml.heads import build_classifier
from workers.ml.weights import reference_network, verify

KINDS = ["dinov3_vit_small", "dinov3_convnext_small"]


@pytest.fixture(autouse=True)
def tiny(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STUDIO_DINOV3_ARCH", "tiny")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("STUDIO_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("STUDIO_WORKSPACE", str(tmp_path / "workspace"))


@pytest.mark.parametrize("model_id", KINDS)
def test_features_embedding_and_onnx_parity(model_id: str, tmp_path: Path) -> None:
    backbone, note = build_backbone(model_id, pretrained=True)
    assert note == "random-init" and backbone.arch["scale"] == "tiny"
    features = backbone(torch.zeros(2, 3, 64, 64))
    assert [f.shape[1] for f in features] == backbone.out_channels
    assert [64 // f.shape[-1] for f in features] == backbone.strides
    assert backbone.embed(torch.zeros(2, 3, 64, 64)).shape == (2, backbone.embed_channels)
    model, _ = build_classifier(model_id, 4, pretrained=False)
    model.eval()
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 3, 64, 64),), str(path), input_names=["input"],
        output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    x = torch.randn(3, 3, 64, 64)
    onnx_out = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(onnx_out - model(x).numpy()).max() < 1e-4


def test_frozen_backbone_with_last_blocks_at_a_lower_rate() -> None:
    from workers.ml.tasks.classification.module import ClassificationModule

    recipe = config(model="dinov3_vit_small", unfreeze_last_blocks=1, backbone_lr_factor=0.25)
    assert recipe["freeze_backbone"] is True  # DINOv3 trains head-only unless told otherwise
    module = ClassificationModule(recipe, 3, False)
    backbone = module.model.backbone
    frozen = [n for n, p in backbone.named_parameters() if not p.requires_grad]
    assert any("embeddings" in n for n in frozen) and any("layer.0." in n for n in frozen)
    assert not any("layer.1." in n for n in frozen)  # the last of two blocks trains
    groups = module.parameter_groups()
    assert isinstance(groups[0], dict) and groups[1]["lr"] == pytest.approx(recipe["lr"] * 0.25)
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in module.model.head.parameters()}
    plain = ClassificationModule(config(model="dinov3_vit_small"), 3, False)
    assert all(not p.requires_grad for p in plain.model.backbone.parameters())


def test_fit_records_the_architecture_and_reloads_without_the_switch(
    tiny_samples: list[Sample], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(tiny_samples, tmp_path / "out", model="dinov3_convnext_small", image_size=64,
                 unfreeze_last_blocks=2)  # fmt: skip
    assert result.status == "completed"
    assert result.provenance["arch"]["scale"] == "tiny"
    assert result.provenance["weights_used"]["source"] == "random initialisation"
    assert result.provenance["mean"] == list(get_model("dinov3_convnext_small").mean)
    monkeypatch.delenv("STUDIO_DINOV3_ARCH")  # the checkpoint says which architecture
    model = load_for_inference(tmp_path / "out" / "best.ckpt")
    assert model.model(torch.zeros(1, 3, 64, 64)).shape == (1, 3)


def test_hugging_face_files_verify_and_mismatches_are_named(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    reference = reference_network("dinov3_vit_small")
    # The published checkpoints name tensors without transformers' "model." prefix.
    state = {
        k.removeprefix("model."): torch.zeros(v.shape) for k, v in reference.state_dict().items()
    }
    good = tmp_path / "dinov3-vits16-pretrain-lvd1689m.safetensors"
    save_file(state, str(good))
    verdict = verify("dinov3_vit_small", good)
    assert verdict["ok"] is True, verdict["problems"]
    assert verdict["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    state.pop("norm.weight")
    state["embeddings.cls_token"] = torch.zeros(1, 1, 8)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    problems = verify("dinov3_vit_small", bad)["problems"]
    assert problems[0] == "1 missing tensors: norm.weight"
    assert "embeddings.cls_token: file (1, 1, 8), model (1, 1, 384)" in problems[1]
    assert verify("small_cnn", good)["problems"] == [
        "small_cnn has no published pretrained weights to add"
    ]


def test_catalog_file_names_are_torchvisions() -> None:
    from workers.ml.tasks.detection.models import TORCHVISION

    for model_id, (_, enum) in _TORCHVISION.items():
        assert list(get_model(model_id).weight_files) == torchvision_weight_names(enum)
    for model_id, family in TORCHVISION.items():
        assert list(get_model(model_id).weight_files) == torchvision_weight_names(family.weights)


def test_studio_weights_are_loaded_and_recorded_with_their_hash(
    tiny_samples: list[Sample], tmp_path: Path
) -> None:
    import torchvision

    folder = tmp_path / "workspace" / "weights"
    folder.mkdir(parents=True)
    path = folder / "mobilenet_v3_small.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    result = run(tiny_samples, tmp_path / "out", model="mobilenet_v3_small", batch_size=8)
    used = result.provenance["weights_used"]
    assert result.provenance["weights"] == "pretrained:mobilenet_v3_small.pth"
    assert used["file"] == str(path) and used["source"] == "studio"
    assert used["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    none = run(tiny_samples, tmp_path / "none", model="mobilenet_v3_small", batch_size=8,
               pretrained="none")  # fmt: skip
    assert none.provenance["weights_used"]["file"] is None
