"""Every anomaly method trains (or fits) on the synthetic surfaces, evaluates with maps, and
exports to ONNX with valid parity; the feature-memory methods only with local pretrained
weights (here: a ResNet-18 state dict saved under torchvision's file name, as a user would
place the real one) and say clearly when there are none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.services.experiments import resolve_config
from benchmarks.synthetic import write_dataset
from benchmarks.task_quality import split, studio_samples
from workers.ml.checkpoints import load_for_inference, preprocess
from workers.ml.data import load_image
from workers.ml.export.pipeline import run_export
from workers.ml.export.spec import ExportSpec
from workers.ml.tasks import get_task_code
from workers.ml.train import FitRequest, fit

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str]]:
    folder = tmp_path_factory.mktemp("surfaces")
    info = write_dataset("anomaly", folder, images=40, size=64, seed=3)
    samples, classes = studio_samples(folder, "anomaly", info["format"])
    return split("anomaly", samples, 0), classes


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import torchvision

    from workers.ml.backbones import torchvision_weight_names

    folder = tmp_path / "weights"
    folder.mkdir()
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    torch.save(net.state_dict(), folder / torchvision_weight_names("ResNet18_Weights")[0])
    monkeypatch.setenv("STUDIO_WEIGHTS_DIR", str(folder))
    return folder


def train(
    parts: dict[str, Any], classes: list[str], out: Path, **overrides: Any
) -> tuple[Any, Any]:
    config = resolve_config(
        {"epochs": 2, "image_size": 64, "batch_size": 8, "warmup_epochs": 0, **overrides},
        "anomaly",
    )
    code = get_task_code("anomaly")
    fresh = {k: [s for s in v] for k, v in parts.items()}
    prepared = code.prepare(fresh, classes, config)
    result = fit(FitRequest("anomaly", config, classes, prepared, out))
    return result, prepared


def evaluate_and_export(out: Path, prepared: Any, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    code = get_task_code("anomaly")
    model = load_for_inference(out / "best.ckpt")
    test = prepared.samples["test"]
    outcome = code.evaluate(model, test, options={"artefact_dir": str(tmp_path)})
    wrapped = code.export_module(model)
    spec = ExportSpec(
        task="anomaly",
        classes=list(model.classes),
        image_size=model.image_size,
        mean=model.mean,
        std=model.std,
        output_names=wrapped.output_names,
        postprocess_spec=wrapped.postprocess,
        info=dict(model.info),
    )
    inputs = np.stack([preprocess(load_image(s.path), model).numpy() for s in test])
    exported = run_export(
        wrapped.module,
        spec=spec,
        fmt="onnx",
        path=tmp_path / "model.onnx",
        inputs=inputs,
        compare=lambda fmt, ref, cand, meta: code.parity(
            fmt=fmt, reference=ref, candidate=cand, samples=test, meta=meta
        ),
    )
    return outcome, exported


@pytest.mark.parametrize("method", ["conv_autoencoder", "padim_resnet18", "patchcore_resnet18"])
def test_method_fits_evaluates_and_exports(
    method: str,
    surfaces: tuple[dict[str, Any], list[str]],
    weights: Path,
    tmp_path: Path,
) -> None:
    parts, classes = surfaces
    out = tmp_path / "run"
    result, prepared = train(parts, classes, out, model=method)
    assert prepared.info["mode"] == "unsupervised"
    if method != "conv_autoencoder":
        assert result.weights.startswith("pretrained:") and result.epochs_done == 1
    outcome, exported = evaluate_and_export(out, prepared, tmp_path)
    aggregate = outcome.aggregate
    assert isinstance(aggregate["auroc"], float) and isinstance(aggregate["pixel_auroc"], float)
    assert np.isfinite(aggregate["threshold"])
    assert exported["valid"], (exported["validation"]["checks"], exported["validation"]["measures"])
    assert exported["metadata"]["threshold"] == aggregate["threshold"]  # calibrated on val
    assert exported["metadata"]["outputs"] == ["score", "map"]
    assert {"threshold", "map_range", "score_range"} <= set(exported["metadata"])
    heatmaps = [f for f in outcome.files if f.startswith("map-")]
    assert len(heatmaps) == len(outcome.rows) and (tmp_path / heatmaps[0]).is_file()


def test_feature_memory_methods_need_local_pretrained_weights(
    surfaces: tuple[dict[str, Any], list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.ml.tasks.anomaly.module import MissingWeights

    monkeypatch.setenv("STUDIO_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    parts, classes = surfaces
    with pytest.raises(MissingWeights, match="no local resnet18 weights"):
        train(parts, classes, tmp_path / "run", model="padim_resnet18")


def test_supervised_mode_trains_a_binary_classifier_on_real_anomalies(
    surfaces: tuple[dict[str, Any], list[str]], tmp_path: Path
) -> None:
    parts, classes = surfaces
    mixed = {
        "train": parts["train"] + parts["val"][: len(parts["val"]) // 2],
        "val": parts["val"][len(parts["val"]) // 2 :] + parts["test"],
        "test": parts["test"],
    }
    assert any(s.target == 1 or "anomalous" in s.class_names("label") for s in mixed["train"])
    result, prepared = train(mixed, classes, tmp_path / "run", model="anomaly_unet")
    assert prepared.info["mode"] == "supervised" and prepared.info["train_anomalous"] > 0
    assert "train/image_bce" in result.history[-1]["metrics"]
    assert "train/dice" not in result.history[-1]["metrics"]  # no synthetic defects
    unsupervised, prepared_u = train(
        mixed, classes, tmp_path / "run2", model="anomaly_unet", mode="unsupervised", epochs=1
    )
    assert prepared_u.info["train_anomalous"] == 0 and prepared_u.dropped["train"] > 0
    assert any("left out" in note for note in prepared_u.notes)
    assert "train/dice" in unsupervised.history[-1]["metrics"]
