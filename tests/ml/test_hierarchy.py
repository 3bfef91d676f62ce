"""Hierarchical classification, the code half: per-stage learning rates (inactive heads frozen,
new heads warmed up), gated inference inside the one model, the fine loss masked to the true
parent group, and a curriculum that stops mid-stage and resumes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sqlmodel import Session, select

from app.models import Experiment, MetricPoint, Project
from app.services import experiments as experiment_service
from app.services.experiments import resolve_config
from app.storage import Storage
from app.tasks.hierarchy import bind_taxonomy
from tests.factories import make_class, make_image, make_split
from tests.support.training import stop_then_resume
from workers.ml.tasks.classification.hierarchy import (
    NEG,
    HierarchicalClassifier,
    HierarchicalModule,
    group_factor,
    hierarchy_info,
    level_scores,
    stage_plan,
)

# fine classes a, b (group G) and c (group H) under roots: binary X = {G}, Y = {H}
PARENTS: dict[str, str | None] = {
    "a": "G",
    "b": "G",
    "c": "H",
    "G": "X",
    "H": "Y",
    "X": None,
    "Y": None,
}
CLASSES = ["a", "b", "c", "G", "H", "X", "Y"]


def _config(**hierarchy: Any) -> dict[str, Any]:
    block = {"levels": ["binary", "coarse", "fine"], **hierarchy}
    config = resolve_config(
        {
            "model": "small_cnn",
            "image_size": 32,
            "lr": 4e-3,
            "scheduler": "none",
            "hierarchy": block,
        },
        "classification",
    )
    return bind_taxonomy(config, PARENTS)


def test_each_stage_trains_its_heads_and_warms_up_new_ones() -> None:
    config = _config(
        head_warmup_epochs=0.5,
        curriculum=[
            {"level": "binary", "epochs": 1, "lr": 1e-3},
            {"level": "coarse", "epochs": 1, "lr": 2e-3},
            {"level": "fine", "epochs": 2, "lr": 4e-3, "freeze": ["binary"]},
        ],
    )
    assert config["epochs"] == 4
    plan = stage_plan(config, 10)
    assert [s["active"] for s in plan] == [
        ["binary"],
        ["binary", "coarse"],
        ["coarse", "fine"],
    ]
    factor = {p: group_factor(config, plan, p, 5) for p in ("backbone", "binary", "coarse", "fine")}
    assert [factor[p](0) for p in factor] == [0.25, 0.25, 0.0, 0.0]  # first stage: no warm-up
    assert factor["backbone"](10) == 0.5 and factor["binary"](10) == 0.5
    assert factor["coarse"](10) == pytest.approx(0.5 / 5)  # new head: warm-up from 1/5
    assert factor["coarse"](14) == pytest.approx(0.5) and factor["fine"](14) == 0.0
    assert factor["binary"](20) == 0.0  # frozen in the fine stage
    assert factor["fine"](20) == pytest.approx(1 / 5) and factor["fine"](39) == 1.0
    assert factor["coarse"](20) == 1.0  # not new: no warm-up again


def test_gated_inference_routes_fine_logits_through_the_coarse_head() -> None:
    torch.manual_seed(0)
    info = hierarchy_info(_config(gated_inference=True), CLASSES)
    assert info["groups"] == {"binary": ["X", "Y"], "coarse": ["G", "H"]}
    assert info["class_group"]["coarse"] == [0, 0, 1, -1, -1, -1, -1]
    net = HierarchicalClassifier("small_cnn", len(CLASSES), info, pretrained=False).eval()
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        levels = net.levels(x)
        routed = net(x)
    assert (levels["fine"][:, 3:] == NEG).all()  # group classes are never predicted
    for row in range(6):
        group = int(levels["coarse"][row].argmax())
        allowed = [c for c in range(3) if info["class_group"]["coarse"][c] == group]
        kept = [c for c in range(len(CLASSES)) if routed[row, c] > NEG / 2]
        assert kept == allowed
    net.gated = False
    with torch.no_grad():
        assert torch.equal(net(x), levels["fine"])


def test_fine_loss_gives_gradient_only_to_the_true_group() -> None:
    torch.manual_seed(0)
    config = _config()
    info = {"hierarchy": hierarchy_info(config, CLASSES)}
    module = HierarchicalModule(config, CLASSES, info)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])  # all in group G
    soft = torch.nn.functional.one_hot(y, len(CLASSES)).float()
    parts = module.losses(module.net.levels(x), soft, ["fine"])
    parts["fine"].backward()
    grad = module.net.heads["fine"].fc.weight.grad
    assert grad is not None
    assert grad[:2].abs().sum() > 0  # a and b compete
    assert grad[2:].abs().sum() == 0  # c (group H) and the groups get nothing
    # with hard labels the soft-target loss is the masked cross-entropy
    out = module.net.levels(x)
    masked = out["fine"].clone()
    masked[:, 2:] = NEG
    soft = torch.nn.functional.one_hot(y, len(CLASSES)).float()
    expected = torch.nn.functional.cross_entropy(masked, y)
    assert torch.allclose(module.losses(out, soft, ["fine"])["fine"], expected, atol=1e-5)
    # a MixUp target across groups opens both groups, and the coarse target mixes too
    mixed = 0.7 * soft[:1] + 0.3 * torch.nn.functional.one_hot(torch.tensor([2]), len(CLASSES))
    module.net.zero_grad()
    parts = module.losses(module.net.levels(x[:1]), mixed, ["coarse", "fine"])
    parts["fine"].backward()
    grad = module.net.heads["fine"].fc.weight.grad
    assert grad is not None and grad[2].abs().sum() > 0 and grad[3:].abs().sum() == 0


def test_level_scores_carry_macro_f1_and_balanced_accuracy_per_level() -> None:
    # fine classes a, b (group 0) and c (group 1); the coarse head never predicts group 1
    class_group = {"coarse": np.array([0, 0, 1])}
    truth = np.array([0, 0, 0, 1, 1, 2])
    fine = np.array([0, 0, 1, 1, 1, 0])
    coarse = np.array([0, 0, 0, 0, 0, 0])
    scores = level_scores(fine, truth, {"coarse": coarse}, class_group)
    assert scores["coarse/accuracy"] == pytest.approx(5 / 6)
    # group 0: precision 5/6, recall 1 -> F1 10/11; group 1: F1 0 (never predicted)
    assert scores["coarse/macro_f1"] == pytest.approx((10 / 11) / 2)
    assert scores["coarse/balanced_accuracy"] == pytest.approx(0.5)
    # fine: a F1 = 2*2/(4+1+1) = 2/3, b F1 = 2*2/(4+1+0) = 0.8, c F1 = 0
    assert scores["fine/macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert scores["fine/balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert scores["fine/accuracy"] == pytest.approx(4 / 6)


@pytest.mark.slow
def test_curriculum_stops_mid_stage_and_resumes(
    session: Session, storage: Storage, project: Project
) -> None:
    pid = project.id
    assert pid is not None
    images = [
        make_image(session, storage, pid, labels=["ab"[index % 2] if index % 3 else "c"])
        for index in range(24)
    ]
    for name, parent in (("a", "G"), ("b", "G"), ("c", "H")):
        child = make_class(session, pid, name)
        child.parent_id = make_class(session, pid, parent).id
        session.add(child)
    session.commit()
    split = make_split(session, pid, images)
    curriculum = [
        {"level": "coarse", "epochs": 1, "lr": 3e-3},
        {"level": "fine", "epochs": 3, "lr": 3e-3},
    ]
    experiment = experiment_service.create_experiment(
        session,
        pid,
        {
            "name": "staged",
            "split_id": split.id,
            "model": "small_cnn",
            "image_size": 32,
            "batch_size": 8,
            "hierarchy": {"curriculum": curriculum},
        },
    )
    assert experiment.id is not None and experiment.config["epochs"] == 4

    first, second, epochs = stop_then_resume(session, storage, experiment.id, stop_after=2)
    assert first["status"] == "interrupted" and first["epochs_done"] == 2
    assert second["status"] == "completed" and second["epochs_done"] == 4
    assert epochs == [1, 2, 3, 4]
    points = session.exec(
        select(MetricPoint).where(MetricPoint.experiment_id == experiment.id)
    ).all()
    stage = {p.epoch: p.value for p in points if p.key == "val/stage"}
    assert stage == {1: 1.0, 2: 2.0, 3: 2.0, 4: 2.0}
    keys = {p.key for p in points}
    assert {"train/coarse_loss", "train/fine_loss", "val/coarse_accuracy"} <= keys
    coarse_only = {p.key for p in points if p.epoch == 1}
    assert "train/fine_loss" not in coarse_only  # the first stage trains the coarse head only
    done = session.get(Experiment, experiment.id)
    assert done is not None
    assert {"fine/accuracy", "coarse/accuracy", "hierarchical_accuracy", "violations"} <= set(
        done.provenance["test_metrics"]
    )
    # a best checkpoint per stage; the resumed run remembers the stage's best so far
    assert {"best", "last", "best-1-coarse", "best-2-fine"} <= set(done.checkpoints)
    assert done.checkpoints["best-1-coarse"]["epoch"] == 1
    acc = {p.epoch: p.value for p in points if p.key == "val/acc"}
    loss = {p.epoch: p.value for p in points if p.key == "val/loss"}
    expected = max((2, 3, 4), key=lambda e: (acc[e], -loss[e]))
    assert done.checkpoints["best-2-fine"]["epoch"] == expected
    assert storage.resolve(done.checkpoints["best-2-fine"]["path"]).is_file()
