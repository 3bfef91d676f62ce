"""Instance models: both catalog entries build at the experiment's image size (no 800 px
upsampling, anchors scaled), and the small Mask R-CNN takes a training step on masks and
returns Mask R-CNN's loss parts, then instances with masks pasted at the input size."""

from __future__ import annotations

import torch

from app.catalog import list_models
from workers.ml.tasks import get_task_code
from workers.ml.tasks.instance_segmentation.models import build_instance_model


def test_catalog_and_code_agree_and_models_keep_the_image_size() -> None:
    catalog = {m.id for m in list_models("instance_segmentation")}
    assert catalog == get_task_code("instance_segmentation").model_ids()
    for model_id, size in (("maskrcnn_small", 64), ("maskrcnn_resnet50_fpn", 160)):
        model, note = build_instance_model(model_id, 3, size, {}, False)
        assert note == "random-init"
        assert model.transform.min_size == (size,) and model.transform.max_size == size
        sizes = model.rpn.anchor_generator.sizes
        assert max(max(level) for level in sizes) <= size  # scaled down from 800 px
        assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 4


def test_small_mask_rcnn_trains_a_step_and_returns_masks() -> None:
    torch.manual_seed(0)
    model, _ = build_instance_model("maskrcnn_small", 2, 48, {"score_threshold": 0.0}, False)
    masks = torch.zeros(2, 48, 48, dtype=torch.uint8)
    masks[0, 4:14, 4:16] = 1
    masks[1, 18:30, 16:30] = 1
    target = {
        "boxes": torch.tensor([[4.0, 4, 16, 14], [16, 18, 30, 30]]),
        "labels": torch.tensor([1, 2]),
        "masks": masks,
    }
    model.train()
    parts = model([torch.rand(3, 48, 48)], [target])  # one image: the smallest batch
    assert {"loss_mask", "loss_classifier", "loss_box_reg", "loss_objectness"} <= set(parts)
    sum(parts.values()).backward()  # type: ignore[union-attr]
    model.eval()
    with torch.no_grad():
        (found,) = model([torch.rand(3, 48, 48)])
    assert found["masks"].shape[1:] == (1, 48, 48)
    assert len(found["masks"]) == len(found["boxes"]) == len(found["scores"])
