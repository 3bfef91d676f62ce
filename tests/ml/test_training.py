"""Fits of a few steps through the real Lightning path: every model family, every recipe
switch, multi-label, stop/resume, determinism; registries on both sides of the process line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

from app.catalog import list_models
from app.services.experiments import resolve_config
from app.tasks import list_tasks
from tests.ml.conftest import write_samples
from workers.ml.backbones import BACKBONE_IDS, build_backbone, find_pretrained
from workers.ml.checkpoints import load_checkpoint, load_for_inference
from workers.ml.tasks import get_task_code, task_code_keys
from workers.ml.tasks.base import Ann, Prepared, Sample
from workers.ml.train import FitRequest, fit, oom_policy

CLASSES = ["red", "green", "blue"]


def config(**overrides: Any) -> dict[str, Any]:
    base = {"epochs": 1, "batch_size": 4, "warmup_epochs": 0, "image_size": 32}
    return resolve_config({**base, **overrides}, "classification")


def request(
    samples: list[Sample], out: Path, *, multi_label: bool = False, **overrides: Any
) -> FitRequest:
    prepared = Prepared(
        samples={"train": samples[:8], "val": samples[8:]}, info={"multi_label": multi_label}
    )
    return FitRequest("classification", config(**overrides), CLASSES, prepared, out)


def run(samples: list[Sample], out: Path, *, multi_label: bool = False, **overrides: Any) -> Any:
    return fit(request(samples, out, multi_label=multi_label, **overrides))


def test_catalog_and_backbones_list_the_same_models() -> None:
    """Classification models are the backbones, plus each backbone (DINOv3's included) as a
    dual-head (classification + segmentation) model."""
    catalog = {m.id for m in list_models("classification")}
    dual = {i for i in catalog if i.startswith("dualhead_")}
    assert catalog - dual == set(BACKBONE_IDS)
    assert {i.removeprefix("dualhead_") for i in dual} == set(BACKBONE_IDS)


def test_every_trainable_task_has_a_code_half_and_vice_versa() -> None:
    trainable = {t.key for t in list_tasks() if t.supports("train")}
    assert trainable == set(task_code_keys())


@pytest.mark.parametrize(
    "model_id",
    [
        "small_cnn",
        pytest.param("resnet18", marks=pytest.mark.slow),
        pytest.param("resnet34", marks=pytest.mark.slow),
        pytest.param("resnet50", marks=pytest.mark.slow),
        pytest.param("efficientnet_b0", marks=pytest.mark.slow),
        pytest.param("efficientnet_b3", marks=pytest.mark.slow),
        pytest.param("mobilenet_v3_small", marks=pytest.mark.slow),
        pytest.param("mobilenet_v3_large", marks=pytest.mark.slow),
    ],
)
def test_each_model_family_fits_a_step_and_reloads(
    tiny_samples: list[Sample], tmp_path: Path, model_id: str
) -> None:
    backbone, _ = build_backbone(model_id, pretrained=False)
    features = backbone(torch.zeros(2, 3, 64, 64))
    assert [f.shape[1] for f in features] == backbone.out_channels
    assert [64 // f.shape[-1] for f in features] == backbone.strides
    assert backbone.strides == sorted(backbone.strides) and len(features) >= 3
    result = run(tiny_samples, tmp_path / "out", model=model_id, batch_size=8)
    assert result.status == "completed" and result.epochs_done == 1
    assert result.provenance["model"] == model_id
    model = load_for_inference(tmp_path / "out" / "best.ckpt")
    logits = model.model(torch.zeros(1, 3, 32, 32))
    assert logits.shape == (1, 3)


def test_pretrained_weights_from_the_weights_dir_are_used_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    weights = tmp_path / "weights"
    weights.mkdir()
    reference = torchvision.models.mobilenet_v3_small(weights=None)
    name = Path(torchvision.models.MobileNet_V3_Small_Weights.DEFAULT.url).name
    torch.save(reference.state_dict(), weights / name)
    monkeypatch.setenv("STUDIO_WEIGHTS_DIR", str(weights))
    assert find_pretrained("mobilenet_v3_small") == weights / name
    backbone, note = build_backbone("mobilenet_v3_small", pretrained=True)
    assert note == f"pretrained:{name}"
    first = next(iter(backbone.state_dict().values()))
    assert torch.equal(first, reference.features.state_dict()["0.0.weight"])
    _, note = build_backbone("mobilenet_v3_small", pretrained=False)
    assert note == "random-init"
    monkeypatch.setenv("STUDIO_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    assert build_backbone("mobilenet_v3_small", pretrained=True)[1] == "random-init"


@pytest.mark.parametrize(
    "overrides",
    [
        {"optimizer": "sgd", "scheduler": "step", "step_size": 1},
        {"scheduler": "onecycle"},
        {"scheduler": "none", "label_smoothing": 0.1},
        {
            "augment": {
                "hflip": True,
                "vflip": True,
                "color_jitter": 0.3,
                "random_resized_crop": True,
            }
        },
        {"augment": {"mixup_alpha": 0.4, "cutmix_alpha": 1.0}},
        {"ema": True, "ema_decay": 0.9},
        {"freeze_backbone": True},
        {"accumulate_grad_batches": 2, "early_stopping_patience": 1, "epochs": 3},
        {"mixed_precision": True, "deterministic": False},
    ],
    ids=lambda o: ",".join(o),
)
def test_recipe_switches_train(
    tiny_samples: list[Sample], tmp_path: Path, overrides: dict[str, Any]
) -> None:
    events: list[dict[str, Any]] = []
    result = fit(request(tiny_samples, tmp_path, **overrides), events.append)
    assert result.status == "completed"
    epochs = [e for e in events if e["type"] == "epoch"]
    assert epochs and {"train/loss", "val/acc", "val/loss", "lr", "images_per_s"} <= set(
        epochs[-1]["metrics"]
    )
    if overrides.get("mixed_precision") and not torch.cuda.is_available():
        assert any("mixed_precision ignored" in n for n in result.notes)
    if overrides.get("freeze_backbone"):
        checkpoint = load_checkpoint(tmp_path / "last.ckpt")
        assert checkpoint["provenance"]["config"]["freeze_backbone"] is True


def test_multi_label_uses_sigmoid_thresholds_and_label_metrics(tmp_path: Path) -> None:
    samples = write_samples(tmp_path / "ml", 12, 3, multi_label=True)
    result = run(samples, tmp_path / "out", multi_label=True, epochs=2)
    assert result.provenance["multi_label"] is True
    metrics = result.history[-1]["metrics"]
    assert {"val/acc", "val/f1_macro", "val/map", "val/label_acc"} <= set(metrics)
    model = load_for_inference(tmp_path / "out" / "best.ckpt")
    assert (
        model.info["multi_label"]
        and model.info["thresholds"] is not None
        and len(model.info["thresholds"]) == 3
    )
    assert all(0 < t < 1 for t in model.info["thresholds"])
    held_out = samples[8:]
    for sample in held_out:
        sample.annotations = [Ann("label", CLASSES[t]) for t in sample.target]
    outcome = get_task_code("classification").evaluate(model, held_out, options={})
    assert {"accuracy", "f1_macro", "map"} <= set(outcome.aggregate)
    assert len(outcome.rows) == len(held_out) and outcome.matches


def test_stop_saves_and_resume_continues_with_optimizer_state(
    tiny_samples: list[Sample], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    steps = {"n": 0}

    def stop_after_five() -> bool:
        steps["n"] += 1
        return steps["n"] >= 5  # 2 steps per epoch: stops in the middle of epoch 3

    req = request(tiny_samples, out, epochs=4)
    stopped = fit(req, should_stop=stop_after_five)
    assert stopped.status == "stopped"
    assert stopped.epochs_done == 2 and stopped.global_step == 5
    last = load_checkpoint(out / "last.ckpt")
    assert last["extra"]["trainer"]["optimizer_states"][0]["state"]  # Adam moments saved
    assert last["extra"]["global_step"] == 5
    # Resume with a raised epoch count: it finishes the remaining epochs, not more, not fewer.
    req.config = config(epochs=5)
    req.resume_from = out / "last.ckpt"
    started = time.monotonic()
    resumed = fit(req)
    wall = time.monotonic() - started
    assert resumed.status == "completed"
    assert [e["epoch"] for e in resumed.history] == [3, 4, 5]
    # The resumed epoch's figures cover what ran after the resume: one batch of 4 images,
    # within this call's wall time (not seconds since the clock's zero).
    first = resumed.history[0]
    assert 0 < first["seconds"] <= wall
    assert first["metrics"]["images_per_s"] * first["seconds"] == pytest.approx(4)
    assert resumed.provenance["resumes"][0]["from_epoch"] == 2
    assert load_checkpoint(out / "last.ckpt")["extra"]["epoch"] == 5


def test_stop_on_the_last_batch_of_an_epoch_resumes_with_the_next_epoch(
    tiny_samples: list[Sample], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    calls = {"n": 0}

    def stop_at_fourth_batch() -> bool:  # 2 batches per epoch: the end of epoch 2
        calls["n"] += 1
        return calls["n"] >= 4

    req = request(tiny_samples, out, epochs=3)
    stopped = fit(req, should_stop=stop_at_fourth_batch)
    assert stopped.status == "stopped" and stopped.epochs_done == 2
    req.resume_from = out / "last.ckpt"
    resumed = fit(req)
    assert [e["epoch"] for e in resumed.history] == [3]
    assert resumed.epochs_done == 3 and resumed.global_step == 6


def test_resume_from_an_epoch_end_checkpoint_loses_no_epoch(
    tiny_samples: list[Sample], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = fit(request(tiny_samples, out, epochs=2))
    assert first.epochs_done == 2
    again_request = request(tiny_samples, out, epochs=3)
    again_request.resume_from = out / "last.ckpt"
    again = fit(again_request)
    assert [e["epoch"] for e in again.history] == [3]
    assert again.global_step == 6


def test_same_seed_deterministic_gives_identical_epoch_metrics(
    tiny_samples: list[Sample], tmp_path: Path
) -> None:
    def history(folder: str) -> list[dict[str, float]]:
        result = run(tiny_samples, tmp_path / folder, epochs=2, seed=7)
        return [
            {k: v for k, v in e["metrics"].items() if k != "images_per_s"} for e in result.history
        ]

    assert history("a") == history("b")


def test_oom_policy_halves_batch_keeps_effective_batch_and_gives_up_at_one() -> None:
    assert oom_policy(64, 1) == (32, 2)
    assert oom_policy(3, 2) == (1, 4)
    assert oom_policy(1, 8) is None
    batch, accumulate, steps = 256, 1, 0
    while (changed := oom_policy(batch, accumulate)) is not None:
        assert changed[0] * changed[1] == batch * accumulate or changed[0] == 1
        batch, accumulate = changed
        steps += 1
    assert batch == 1 and steps == 8
