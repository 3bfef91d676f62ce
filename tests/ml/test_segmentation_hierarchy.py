"""Hierarchical semantic segmentation, the code half: per-pixel heads per level on the
segmenter's decoder, the fine loss masked to the pixel's true coarse group, gated routing per
pixel inside the one model, the curriculum's parameter groups, and a curriculum that stops
mid-stage and resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.config import Settings
from app.models import Experiment, MetricPoint
from app.services import experiments as experiment_service
from app.services.experiments import resolve_config
from app.storage import Storage
from app.tasks.segmentation import bind_hierarchy
from tests.support.tasks import imported_project
from tests.support.training import stop_then_resume
from workers.ml.hierarchy import NEG, group_factor, hierarchy_info, stage_plan
from workers.ml.tasks.segmentation.hierarchy import (
    HierarchicalSegmentationModule,
    HierarchicalSegmenter,
    LevelConv,
    target_index,
    violations,
)

# background (its own group), fine a, b (group G) and c (group H) under the root S
PARENTS: dict[str, str | None] = {
    "background": None,
    "a": "G",
    "b": "G",
    "c": "H",
    "G": "S",
    "H": "S",
    "S": None,
}
CLASSES = ["background", "a", "b", "c", "G", "H", "S"]


def _config(model: str = "unet_small", **hierarchy: Any) -> dict[str, Any]:
    block = {"levels": ["binary", "coarse", "fine"], **hierarchy}
    config = resolve_config(
        {"model": model, "image_size": 32, "lr": 4e-3, "scheduler": "none", "hierarchy": block},
        "segmentation",
    )
    return bind_hierarchy(config, PARENTS)


def test_background_is_its_own_group_and_the_levels_come_from_the_taxonomy() -> None:
    info = hierarchy_info(_config(), CLASSES)
    assert info["groups"] == {"binary": ["S", "background"], "coarse": ["G", "H", "background"]}
    assert info["class_group"]["coarse"] == [2, 0, 0, 1, -1, -1, -1]
    assert info["class_group"]["binary"] == [1, 0, 0, 0, -1, -1, -1]
    assert info["leaves"] == [True, True, True, True, False, False, False]


@pytest.mark.parametrize(
    "model",
    [
        "unet_small",
        "deeplabv3plus_small_cnn",
        "deeplabv3_mobilenet_v3_large",
        "lraspp_mobilenet_v3_large",
    ],
)
def test_gated_inference_routes_every_pixel_through_the_coarse_head(model: str) -> None:
    torch.manual_seed(0)
    info = hierarchy_info(_config(model, gated_inference=True), CLASSES)
    net = HierarchicalSegmenter(model, len(CLASSES), info).eval()
    convs = sum(isinstance(m, LevelConv) for m in net.modules())
    assert convs == (2 if model.startswith("lraspp") else 1)  # LRASPP sums two classifiers
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        levels = net.levels(x)
        routed = net(x)
    assert routed.shape == (2, len(CLASSES), 32, 32)
    assert levels["coarse"].shape == (2, 3, 32, 32) and levels["binary"].shape == (2, 2, 32, 32)
    assert (levels["fine"][:, 4:] == NEG).all()  # group classes are never predicted
    group = torch.tensor(info["class_group"]["coarse"])
    coarse = levels["coarse"].argmax(1)  # [N, H, W]
    kept = routed > NEG / 2  # [N, C, H, W]
    expected = group.view(1, -1, 1, 1) == coarse.unsqueeze(1)
    assert torch.equal(kept, expected)
    net.gated = False
    with torch.no_grad():
        assert torch.equal(net(x), levels["fine"])


def test_fine_loss_trains_only_the_pixels_true_group_and_stages_pick_the_heads() -> None:
    torch.manual_seed(0)
    config = _config()
    config["dice_weight"] = 0.0
    info = {"hierarchy": hierarchy_info(config, CLASSES), "background": 0}
    module = HierarchicalSegmentationModule(config, CLASSES, info)
    x = torch.randn(2, 3, 32, 32)
    y = torch.full((2, 32, 32), 1, dtype=torch.long)  # every pixel a (group G)
    y[:, :, 16:] = 2  # b, same group
    y[:, :2] = 255  # ignore
    y[:, 2:4] = 4  # group class G: ignore at the fine level, itself at coarse
    y[:, 4:6] = 6  # group class S: itself at binary, ignore below
    targets = module.targets(y)
    assert [int(targets[lv][0, 3, 0]) for lv in ("fine", "coarse", "binary")] == [255, 0, 255]
    assert [int(targets[lv][0, 5, 0]) for lv in ("fine", "coarse", "binary")] == [255, 255, 0]
    assert [int(targets[lv][0, 9, 0]) for lv in ("fine", "coarse", "binary")] == [1, 0, 0]
    assert int(targets["coarse"][0, 0, 0]) == 255
    module.plan = stage_plan(config, 1.0)  # one joint stage: every level active
    loss = module.training_step((x, y, None), 0)
    assert set(module.loss_parts) == {"binary_loss", "coarse_loss", "fine_loss"}
    loss.backward()
    (fine,) = module.net.heads("fine")
    grad = fine.weight.grad
    assert grad is not None
    assert grad[1:3].abs().sum() > 0  # a and b compete
    assert grad[0].abs().sum() == 0 and grad[3:].abs().sum() == 0  # background, c, groups: none
    names = [g["name"] for g in module.parameter_groups()]
    assert names == ["backbone", "decoder", "fine", "binary", "coarse"]


def test_backbone_and_decoder_train_in_every_stage() -> None:
    config = _config(
        curriculum=[
            {"level": "binary", "epochs": 1, "lr": 1e-3},
            {"level": "fine", "epochs": 1, "lr": 4e-3},
        ]
    )
    plan = stage_plan(config, 10)
    factor = {p: group_factor(config, plan, p, 0) for p in ("backbone", "decoder", "fine")}
    assert [factor[p](0) for p in factor] == [0.25, 0.25, 0.0]
    assert [factor[p](10) for p in factor] == [1.0, 1.0, 1.0]


@pytest.mark.slow
def test_curriculum_stops_mid_stage_and_resumes(
    tmp_path: Path, session: Session, storage: Storage, settings: Settings, engine: Engine
) -> None:
    settings = settings.model_copy(update={"import_roots": [tmp_path]})
    project, split = imported_project(
        session,
        engine,
        storage,
        settings,
        "segmentation/hierarchy",
        tmp_path / "d",
        images=20,
        size=32,
    )
    assert project.id is not None
    experiment = experiment_service.create_experiment(
        session,
        project.id,
        {
            "name": "staged",
            "split_id": split.id,
            "model": "unet_small",
            "decoder_channels": 4,
            "image_size": 32,
            "batch_size": 8,
            "hierarchy": {
                "levels": ["binary", "coarse", "fine"],
                "curriculum": [
                    {"level": "coarse", "epochs": 1, "lr": 3e-3},
                    {"level": "fine", "epochs": 2, "lr": 3e-3},
                ],
            },
        },
    )
    assert experiment.id is not None and experiment.config["epochs"] == 3

    first, second, epochs = stop_then_resume(session, storage, experiment.id, stop_after=2)
    assert first["status"] == "interrupted" and first["epochs_done"] == 2
    assert second["status"] == "completed" and second["epochs_done"] == 3
    assert epochs == [1, 2, 3]
    points = session.exec(
        select(MetricPoint).where(MetricPoint.experiment_id == experiment.id)
    ).all()
    assert {p.epoch: p.value for p in points if p.key == "val/stage"} == {1: 1.0, 2: 2.0, 3: 2.0}
    keys = {p.key for p in points}
    assert {"train/coarse_loss", "train/fine_loss", "val/coarse_miou", "val/binary_miou"} <= keys
    assert "train/fine_loss" not in {p.key for p in points if p.epoch == 1}
    done = session.get(Experiment, experiment.id)
    assert done is not None
    metrics = done.provenance["test_metrics"]
    assert {"miou", "fine/miou", "coarse/miou", "binary/miou", "violations"} <= set(metrics)


def test_violations_and_implied_groups_are_counted_per_pixel() -> None:
    from workers.ml.tasks.segmentation.hierarchy_eval import _grouped

    info = hierarchy_info(_config(), CLASSES)
    net = HierarchicalSegmenter("unet_small", len(CLASSES), info)
    fine = torch.tensor([[[1, 3], [0, 2]]])  # a, c / background, b
    coarse = torch.tensor([[[0, 0], [2, 1]]])  # G, G / background, H
    assert violations(net, fine, coarse) == 2  # c in G, b in H
    # fine confusion (truth rows, prediction columns) summed into coarse groups
    cm = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    cm[1, 1], cm[1, 3], cm[3, 3], cm[0, 0], cm[4, 2] = 5, 2, 4, 7, 3  # a→a, a→c, c→c, bg, G→b
    truth_groups = target_index(CLASSES, info)["coarse"]  # the G pixels count as G
    implied = _grouped(cm, truth_groups, info["class_group"]["coarse"], 3)
    assert implied.tolist() == [[5 + 3, 2, 0], [0, 4, 0], [0, 0, 7]]
