"""The hierarchy block's optional parts on a tiny model: frozen early backbone stages (weights and
BatchNorm statistics), per-group adapters (each fine class read through its own group's
adapter; exported to ONNX within the fp32 parity tolerance) and distillation from the previous
stage's frozen copy (terms present, zero against an identical teacher, shaping the gradient,
carried through a checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from app.tasks.hierarchy import HierarchyConfig
from tests.ml.test_hierarchy import CLASSES, _config
from workers.ml.export.formats import export_onnx
from workers.ml.export.runtime import onnx_runner
from workers.ml.export.spec import ExportSpec
from workers.ml.tasks.classification.hierarchy import (
    NEG,
    HierarchicalModule,
    hierarchy_info,
)

CURRICULUM = [
    {"level": "coarse", "epochs": 1, "lr": 3e-3},
    {"level": "fine", "epochs": 1, "lr": 3e-3},
]


def _module(**hierarchy: Any) -> HierarchicalModule:
    torch.manual_seed(0)
    config = _config(**hierarchy)
    return HierarchicalModule(config, CLASSES, {"hierarchy": hierarchy_info(config, CLASSES)})


def test_switches_are_validated() -> None:
    assert HierarchyConfig().adapters is None and HierarchyConfig().distill is None
    assert HierarchyConfig().freeze_early_layers == 0
    with pytest.raises(ValidationError):
        HierarchyConfig(adapters="lora")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least two stages"):
        HierarchyConfig(distill={"kl_weight": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="above 0"):
        HierarchyConfig(
            curriculum=CURRICULUM,  # type: ignore[arg-type]
            distill={"feature_weight": 0, "kl_weight": 0},  # type: ignore[arg-type]
        )
    with pytest.raises(ValidationError):
        HierarchyConfig(freeze_early_layers=-1)
    with pytest.raises(ValueError, match="4 stages"):
        _module(freeze_early_layers=4)  # small_cnn: freezing all four is freeze_backbone


def test_freeze_early_layers_keeps_weights_and_batchnorm_statistics() -> None:
    module = _module(freeze_early_layers=2)
    blocks = module.net.backbone.blocks  # type: ignore[union-attr]
    trained = {id(p) for group in module.parameter_groups() for p in group["params"]}
    assert not any(id(p) in trained for p in blocks[:2].parameters())
    assert all(id(p) in trained for p in blocks[2].parameters())
    before = {k: v.clone() for k, v in module.net.backbone.state_dict().items()}
    module.train()
    module.on_train_batch_start(None, 0)
    optimizer = torch.optim.SGD([p for g in module.parameter_groups() for p in g["params"]], lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    soft = torch.nn.functional.one_hot(y, len(CLASSES)).float()
    out = module.net.levels(x)
    sum(module.losses(out, soft, ["binary", "coarse", "fine"]).values()).backward()  # type: ignore[union-attr]
    optimizer.step()
    after = module.net.backbone.state_dict()
    for key, value in before.items():
        changed = not torch.equal(value, after[key])
        assert changed == key.startswith(("blocks.2", "blocks.3")) or "num_batches" in key, key


@pytest.mark.parametrize("kind", ["film", "bottleneck"])
def test_adapters_give_each_fine_class_its_group_view_and_export_with_parity(
    kind: str, tmp_path: Path
) -> None:
    module = _module(adapters=kind)
    net = module.net.eval()
    assert net.adapters is not None
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        start = net.levels(x)["fine"]
        plain = net.heads["fine"](net.backbone.embed(x)).masked_fill(~net.leaf, NEG)
        assert torch.allclose(start, plain, atol=1e-6)  # an adapter starts as the identity
        for parameter in net.adapters.parameters():  # change group H's adapter (index 1) only
            parameter[1].add_(0.5)
        moved = net.levels(x)["fine"]
    assert torch.equal(moved[:, :2], start[:, :2])  # a, b (group G): untouched
    assert not torch.allclose(moved[:, 2], start[:, 2])  # c (group H): its adapter's view
    # the fine loss of group-G samples trains group G's adapter only
    net.train()
    soft = torch.nn.functional.one_hot(torch.tensor([0, 1, 0]), len(CLASSES)).float()
    module.losses(net.levels(x), soft, ["fine"])["fine"].backward()
    grads = [p.grad for p in net.adapters.parameters()]
    assert all(g is not None and g[1].abs().sum() == 0 for g in grads)
    assert any(g is not None and g[0].abs().sum() > 0 for g in grads)
    # the one exported graph computes the same fine logits (fp32 parity tolerance 1e-4)
    net.eval()
    spec = ExportSpec(
        task="classification",
        classes=CLASSES,
        image_size=32,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        output_names=["logits"],
    )
    path = tmp_path / "adapters.onnx"
    export_onnx(net, path, spec=spec, metadata={}, opset=17)
    exported = onnx_runner(path)(x.numpy())
    with torch.no_grad():
        reference = net(x).numpy()
    assert np.abs(np.asarray(exported["logits"]) - reference).max() <= 1e-4


def test_distillation_from_the_previous_stage() -> None:
    module = _module(curriculum=CURRICULUM, distill={"feature_weight": 1.0, "kl_weight": 2.0})
    assert module.distiller is not None
    x = torch.randn(4, 3, 32, 32)
    out, features = module.net.levels_and_features(x)
    assert module.distiller.losses(x, features, out) == {}  # first stage: no teacher yet
    module.distiller.start(module.net, ["binary", "coarse"])  # the coarse stage's heads
    assert module.distiller.levels == ["binary", "coarse"]
    module.net.eval()
    same = module.distiller.losses(x, *reversed(module.net.levels_and_features(x)))
    assert set(same) == {"distill_feature", "distill_kl"}
    assert all(float(v.detach()) == pytest.approx(0.0, abs=1e-6) for v in same.values())
    # the student moves: the terms grow and pull the backbone and the coarse head back
    with torch.no_grad():
        for parameter in module.net.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    module.net.zero_grad()
    out, features = module.net.levels_and_features(x)
    parts = module.distiller.losses(x, features, out)
    assert all(float(v.detach()) > 0 for v in parts.values())
    sum(parts.values()).backward()  # type: ignore[union-attr]
    assert module.net.heads["coarse"].fc.weight.grad is not None
    assert module.net.backbone.blocks[0][0][0].weight.grad.abs().sum() > 0  # type: ignore[index,union-attr]
    assert module.net.heads["fine"].fc.weight.grad is None  # fine is not distilled
    # the teacher travels with a checkpoint: a resumed run distils from the same weights
    checkpoint: dict[str, Any] = {}
    module.on_save_checkpoint(checkpoint)
    resumed = _module(curriculum=CURRICULUM, distill={"feature_weight": 1.0, "kl_weight": 2.0})
    resumed.on_load_checkpoint(checkpoint)
    assert resumed.distiller is not None and resumed.distiller.teacher is not None
    teacher, saved = resumed.distiller.teacher.state_dict(), checkpoint["hierarchy_teacher"]
    assert all(torch.equal(teacher[k], v) for k, v in saved["state_dict"].items())
