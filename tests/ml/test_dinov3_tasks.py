"""DINOv3 behind the heads of the other tasks (tiny random configurations): which backbones a
task may use comes from their declared feature kinds; the ViT's single map gets a simple
pyramid for dense heads; frozen by default with the last blocks at a lower rate; the recorded
architecture rebuilds the network for export, which keeps a dynamic batch and parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from app.catalog import backbones_with, get_model, list_models
from app.services.experiments import resolve_config
from app.tasks.hierarchy import bind_taxonomy
from tests.ml.test_dinov3 import tiny  # noqa: F401 - the tiny-architecture environment
from tests.ml.test_hierarchy import CLASSES, PARENTS
from workers.ml.backbones import backbone_ids
from workers.ml.dinov3 import dinov3_ids
from workers.ml.pyramid import SimplePyramid


def onnx_matches(model: nn.Module, x: torch.Tensor, path: Path) -> float:
    """Export with a dynamic batch axis (traced at batch 1), run a bigger batch, max |diff|."""
    model.eval()
    torch.onnx.export(
        model, (x[:1],), str(path), input_names=["input"], output_names=["out"],
        dynamic_axes={"input": {0: "batch"}, "out": {0: "batch"}}, opset_version=17,
        dynamo=False,
    )  # fmt: skip
    got = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = model(x)
    assert got.shape == tuple(want.shape)
    return float(np.abs(got - want.numpy()).max())


def test_tasks_take_the_backbones_that_declare_their_feature_kind() -> None:
    assert backbone_ids("memory") == ["resnet18", *dinov3_ids()]
    assert set(backbone_ids("embedding")) == set(backbone_ids("dense")) == set(backbone_ids())
    for task, prefix in (("segmentation", "deeplabv3plus_"), ("regression", "")):
        ids = {m.id for m in list_models(task)}
        assert {prefix + b for b in dinov3_ids()} <= ids
    anomaly = {m.id for m in list_models("anomaly")}
    memory = {f"{k}_{b.id}" for k in ("padim", "patchcore") for b in backbones_with("memory")}
    assert memory <= anomaly and "padim_resnet34" not in anomaly
    # a model built on a DINOv3 backbone inherits its input constraints and weights
    plus = get_model("deeplabv3plus_dinov3_convnext_small")
    assert (plus.size_multiple, plus.frozen_by_default) == (32, True)
    assert plus.weights_fallback == "dinov3_convnext_small" and plus.min_image_size == 64
    assert get_model("patchcore_dinov3_vit_small").requires_pretrained == "dinov3_vit_small"
    config = resolve_config({"model": "deeplabv3plus_dinov3_vit_small", "image_size": 40},
                            "segmentation")  # fmt: skip
    assert config["image_size"] == 48 and config["freeze_backbone"] is True


def test_simple_pyramid_levels() -> None:
    pyramid = SimplePyramid(32, 16, (4, 8, 16, 32))
    levels = pyramid([torch.zeros(2, 32, 4, 4)])
    assert [tuple(f.shape[1:]) for f in levels] == [(8, 16, 16), (16, 8, 8), (32, 4, 4), (32, 2, 2)]
    assert pyramid.out_channels == [8, 16, 32, 32] and pyramid.strides == [4, 8, 16, 32]


@pytest.mark.parametrize("backbone", ["dinov3_vit_small", "dinov3_convnext_small"])
def test_segmenter_freezes_the_backbone_but_its_last_block_and_exports(
    backbone: str, tmp_path: Path
) -> None:
    from workers.ml.tasks.segmentation.module import SegmentationModule

    model_id = f"deeplabv3plus_{backbone}"
    config = resolve_config({"model": model_id, "image_size": 64, "decoder_channels": 16,
                             "unfreeze_last_blocks": 1, "backbone_lr_factor": 0.5},
                            "segmentation")  # fmt: skip
    module = SegmentationModule(config, ["background", "a", "b"], {})
    net = module.model
    trainable = {n for n, p in net.backbone.named_parameters() if p.requires_grad}
    assert trainable and len(trainable) < len(list(net.backbone.parameters()))
    assert all(p.requires_grad for p in net.head.parameters())
    if backbone.startswith("dinov3_vit"):  # the pyramid is the head's: it trains
        assert net.neck is not None and all(p.requires_grad for p in net.neck.parameters())
    groups = module.parameter_groups()
    assert groups[1]["lr"] == pytest.approx(config["lr"] * 0.5)  # type: ignore[index]
    assert {id(p) for p in groups[1]["params"]} == {  # type: ignore[index]
        id(p) for p in net.backbone.parameters() if p.requires_grad
    }
    from workers.ml.tasks import get_task_code

    rebuilt = get_task_code("segmentation").build_model(
        {"model": model_id, "classes": ["background", "a", "b"], "config": config,
         "arch": module.arch}
    )  # fmt: skip
    rebuilt.load_state_dict(net.state_dict())
    assert onnx_matches(rebuilt, torch.randn(3, 3, 64, 64), tmp_path / "s.onnx") < 1e-4


def test_hierarchical_heads_on_dinov3_train_the_last_block_slower_and_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers.ml.tasks import get_task_code
    from workers.ml.tasks.classification.hierarchy import (
        HierarchicalModule,
        group_factor,
        hierarchy_info,
        stage_plan,
    )

    config = bind_taxonomy(
        resolve_config(
            {"model": "dinov3_vit_small", "image_size": 32, "lr": 4e-3, "scheduler": "none",
             "unfreeze_last_blocks": 1, "backbone_lr_factor": 0.25,
             "hierarchy": {"levels": ["binary", "coarse", "fine"]}},
            "classification",
        ),
        PARENTS,
    )  # fmt: skip
    assert config["freeze_backbone"] is True
    info = {"hierarchy": hierarchy_info(config, CLASSES)}
    module = HierarchicalModule(config, CLASSES, info)
    backbone = module.net.backbone
    frozen = [n for n, p in backbone.named_parameters() if not p.requires_grad]
    assert any("layer.0." in n for n in frozen) and not any("layer.1." in n for n in frozen)
    plan = stage_plan(config, 10)
    head = group_factor(config, plan, plan[0]["active"][0], 0)(0)
    assert group_factor(config, plan, "backbone", 0)(0) == pytest.approx(head * 0.25)
    monkeypatch.delenv("STUDIO_DINOV3_ARCH")  # the recorded architecture says which
    provenance = {"model": "dinov3_vit_small", "classes": CLASSES, "task_info": info,
                  "arch": module.arch}  # fmt: skip
    rebuilt = get_task_code("classification").build_model(provenance)
    rebuilt.load_state_dict(module.net.state_dict())
    assert onnx_matches(rebuilt, torch.randn(3, 3, 32, 32), tmp_path / "h.onnx") < 1e-4


def test_a_dinov3_detector_saved_before_the_pyramid_moved_still_loads() -> None:
    from workers.ml.tasks.detection.dinov3 import _builder

    build = _builder("dinov3_vit_small")
    trained, _ = build(3, 64, {}, False)
    saved = {}
    for key, value in trained.state_dict().items():  # the names the old code saved
        key = key.replace("pyramid.levels.0.", "up.").replace("pyramid.levels.2.", "down.")
        saved[key] = value
    assert any(".up." in key for key in saved) and any(".down." in key for key in saved)
    fresh, _ = build(3, 64, {}, False)
    fresh.load_state_dict(saved)  # strict: every old key lands on its new name
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_dual_head_on_a_vit_trains_in_phases_rebuilds_and_exports_both_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dual-head benchmark's way (generator → importer with masks → split → fit) on a tiny
    ViT: frozen backbone, pyramid neck training with the decoder, class head on the CLS token;
    the checkpoint rebuilds from its recorded architecture and exports with parity."""
    from argparse import Namespace

    from benchmarks.dual_head_quality import recipe
    from benchmarks.synthetic.dual_head import write_dual_head
    from benchmarks.task_quality import split, studio_samples
    from workers.ml.checkpoints import load_for_inference, preprocess
    from workers.ml.data import load_image
    from workers.ml.export.pipeline import run_export
    from workers.ml.export.spec import ExportSpec
    from workers.ml.tasks import get_task_code
    from workers.ml.tasks.classification.dual_head.module import DualHeadModule
    from workers.ml.train import FitRequest, fit

    assert "dualhead_dinov3_vit_small" in get_task_code("classification").model_ids()
    write_dual_head(tmp_path / "set", images=20, size=32, ood=0)
    samples, classes = studio_samples(tmp_path / "set" / "data", "classification", "folders",
                                      tmp_path / "masks")  # fmt: skip
    args = Namespace(phases="1,1,1", model="dinov3_vit_small", size=32, batch=8, lr=3e-3,
                     decoder=16, negative_share=0.0, freeze_a=False)  # fmt: skip
    config = recipe(args, 0, dual=True)
    assert config["freeze_backbone"] is True  # DINOv3's default holds in every phase
    code = get_task_code("classification")
    prepared = code.prepare(split("classification", samples, 0), classes, config)
    module = DualHeadModule(config, classes, prepared.info)
    assert module.net.neck is not None and module.net.decoder.low_level == 0  # stride 4 skip
    assert not any(p.requires_grad for p in module.net.backbone.parameters())
    assert [g["name"] for g in module.parameter_groups()] == ["seg", "cls"]
    assert {id(p) for p in module.net.neck.parameters()} <= {
        id(p) for p in module.parameter_groups()[0]["params"]
    }
    result = fit(FitRequest("classification", config, classes, prepared, tmp_path / "out"))
    assert result.status == "completed" and result.epochs_done == 3
    assert result.provenance["arch"]["scale"] == "tiny"

    monkeypatch.delenv("STUDIO_DINOV3_ARCH")  # the checkpoint says which architecture
    model = load_for_inference(tmp_path / "out" / "best.ckpt")
    rows = prepared.samples["val"] + prepared.samples["test"]
    evaluated = code.evaluate(model, rows, options={}).aggregate
    assert 0.0 <= evaluated["accuracy"] <= 1.0 and 0.0 <= evaluated["seg_miou"] <= 1.0
    wrapped = code.export_module(model)
    spec = ExportSpec("classification", list(model.classes), model.image_size, list(model.mean),
                      list(model.std), wrapped.output_names, postprocess_spec=wrapped.postprocess,
                      info=dict(model.info))  # fmt: skip
    inputs = torch.stack([preprocess(load_image(s.path), model) for s in rows]).numpy()
    out = run_export(
        wrapped.module, spec=spec, fmt="onnx", path=tmp_path / "m.onnx", inputs=inputs,
        compare=lambda fmt, ref, cand, meta: code.parity(
            fmt=fmt, reference=ref, candidate=cand, samples=rows, meta=meta),
    )  # fmt: skip
    assert wrapped.output_names == ["logits", "masks", "embedding"]
    assert out["valid"], out["validation"]
    assert out["validation"]["max_abs_diff"] <= 1e-4
