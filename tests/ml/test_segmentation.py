"""Segmentation pieces on fixed data: metrics against a numpy confusion-matrix reference, the
loss's ignore index, joint transforms, mask targets, the decoder, the networks."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workers.ml.tasks.base import Ann, Sample
from workers.ml.tasks.segmentation.data import (
    SegmentationDataset,
    class_weights,
    load_mask,
    mask_target,
)
from workers.ml.tasks.segmentation.decode import SegmentationDecoder, confusion, resize_logits
from workers.ml.tasks.segmentation.losses import dice_loss, segmentation_loss
from workers.ml.tasks.segmentation.metrics import PixelMetrics
from workers.ml.tasks.segmentation.models import (
    BackboneSegmenter,
    DeepLabV3PlusHead,
    build_segmenter,
    segmenter_ids,
)

IGNORE = 255


def reference(truths: list[np.ndarray], preds: list[np.ndarray], classes: int, bg: int) -> dict:
    """Plain loops over a pixel confusion matrix: the textbook definitions."""
    cm = np.zeros((classes, classes), dtype=np.int64)
    for truth, pred in zip(truths, preds, strict=True):
        for t, p in zip(truth.reshape(-1), pred.reshape(-1), strict=True):
            if t != IGNORE:
                cm[t, p] += 1
    iou, dice = {}, {}
    for c in range(classes):
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c, :].sum() - cm[c, c]
        if tp + fp + fn:
            iou[c] = tp / (tp + fp + fn)
            dice[c] = 2 * tp / (2 * tp + fp + fn)
    fg = [c for c in range(classes) if c != bg]
    return {
        "miou": np.mean(list(iou.values())),
        "miou_no_bg": np.mean([iou[c] for c in fg if c in iou]),
        "dice": np.mean(list(dice.values())),
        "dice_no_bg": np.mean([dice[c] for c in fg if c in dice]),
        "pixel_accuracy": np.trace(cm) / cm.sum(),
        "pixel_accuracy_no_bg": sum(cm[c, c] for c in fg) / cm[fg].sum(),
        "per_class_iou": [iou.get(c) for c in range(classes)],
    }


def test_metrics_equal_a_numpy_confusion_matrix_reference_on_fixed_masks() -> None:
    rng = np.random.default_rng(7)
    classes = 5  # class 4 never appears: it must not count in the means
    truths, preds = [], []
    for shape in ((6, 9), (11, 4), (8, 8)):  # images of different sizes, one dataset
        truth = rng.integers(0, 4, shape)
        truth[rng.random(shape) < 0.15] = IGNORE
        pred = np.where(
            rng.random(shape) < 0.7, np.where(truth == IGNORE, 0, truth), rng.integers(0, 4, shape)
        )
        truths.append(truth.astype(np.uint8))
        preds.append(pred.astype(np.uint8))
    metrics = PixelMetrics(classes, background=0)
    for truth, pred in zip(truths, preds, strict=True):
        metrics.update(torch.from_numpy(pred), torch.from_numpy(truth))
    got = metrics.compute()
    want = reference(truths, preds, classes, bg=0)
    for key in (
        "miou",
        "miou_no_bg",
        "dice",
        "dice_no_bg",
        "pixel_accuracy",
        "pixel_accuracy_no_bg",
    ):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
    assert got["per_class_iou"][:4] == pytest.approx(want["per_class_iou"][:4], abs=1e-6)
    assert got["per_class_iou"][4] is None


def test_metrics_on_a_hand_counted_example() -> None:
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, IGNORE]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 0, 1]], dtype=np.uint8)
    metrics = PixelMetrics(2, background=0)
    metrics.update(pred, truth)
    got = metrics.compute()
    # class 0: tp 3, fp 1, fn 1 → 3/5; class 1: tp 2, fp 1, fn 1 → 2/4 (the ignore pixel counts nowhere)
    assert got["per_class_iou"] == pytest.approx([0.6, 0.5])
    assert got["miou"] == pytest.approx(0.55) and got["miou_no_bg"] == pytest.approx(0.5)
    assert got["pixel_accuracy"] == pytest.approx(5 / 7)
    assert got["pixel_accuracy_no_bg"] == pytest.approx(2 / 3)
    assert got["dice"] == pytest.approx((6 / 8 + 4 / 6) / 2)


def test_loss_ignores_255_pixels_whatever_the_logits_there() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, :3] = IGNORE
    moved = logits.clone()
    moved[:, :, :3] = torch.randn(2, 3, 3, 8) * 50  # only ignore pixels change
    a, parts_a = segmentation_loss(logits, target, dice_weight=0.5)
    b, parts_b = segmentation_loss(moved, target, dice_weight=0.5)
    assert float(a) == pytest.approx(float(b), rel=1e-5)
    assert set(parts_a) == {"loss_ce", "loss_dice"} and parts_a == pytest.approx(parts_b, rel=1e-5)
    weights = torch.tensor([0.2, 1.0, 5.0])
    weighted, _ = segmentation_loss(logits, target, weights=weights)
    assert float(weighted) != pytest.approx(float(segmentation_loss(logits, target)[0]))


def test_dice_is_zero_for_a_perfect_prediction_and_an_all_ignore_batch_is_finite() -> None:
    target = torch.tensor([[[0, 1], [1, 2]]])
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 40
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-4)
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss, _ = segmentation_loss(logits, torch.full((1, 2, 2), IGNORE), dice_weight=1.0)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(logits.grad).all()  # type: ignore[arg-type]


def _scene(folder: Path, name: str, size: tuple[int, int] = (32, 24)) -> tuple[Path, Path]:
    """An image whose red channel says the class: 200 where the stored mask value is 3."""
    width, height = size
    stored = np.zeros((height, width), np.uint8)
    stored[4:14, 6:20] = 3
    stored[0, 0] = 9  # a value no annotation row names
    pixels = np.full((height, width, 3), 30, np.uint8)
    pixels[..., 0] = np.where(stored == 3, 200, 30)
    folder.mkdir(parents=True, exist_ok=True)
    image, mask = folder / f"{name}.png", folder / f"{name}-mask.png"
    Image.fromarray(pixels).save(image)
    Image.fromarray(stored).save(mask)
    return image, mask


def _sample(image: Path, mask: Path, classes: dict[int, str]) -> Sample:
    return Sample(
        1,
        image,
        width=32,
        height=24,
        annotations=[
            Ann("mask", name, {"file": str(mask), "index": value}, {"pixels": 10 * (value + 1)})
            for value, name in classes.items()
        ],
    )


def test_mask_target_maps_stored_values_to_model_positions(tmp_path: Path) -> None:
    image, mask = _scene(tmp_path, "a")
    sample = _sample(image, mask, {0: "background", 3: "cat"})
    target = mask_target(sample, ["background", "dog", "cat"], background=0)
    assert target is not None and target.lut == {0: 0, 3: 2}
    values = load_mask(target, 32, 24)
    assert set(np.unique(values).tolist()) == {0, 2, IGNORE}  # 9 has no row: ignore
    assert values[5, 7] == 2 and values[0, 0] == IGNORE
    assert mask_target(Sample(2, image), ["background"], 0) is None
    polygon = Sample(
        3, image, annotations=[Ann("polygon", "dog", {"points": [[0, 0], [10, 0], [10, 10]]})]
    )
    painted = load_mask(mask_target(polygon, ["background", "dog"], 0), 32, 24)  # type: ignore[arg-type]
    assert painted[1, 8] == 1 and painted[20, 20] == 0
    weights = class_weights([sample.__class__(1, image, target=target)], 3, "inverse_frequency")
    assert weights is not None and weights[2] < weights[0] and weights[1] == 1.0


def test_joint_transforms_move_the_mask_with_the_image(tmp_path: Path) -> None:
    image, mask = _scene(tmp_path, "b")
    sample = _sample(image, mask, {0: "background", 3: "cat"})
    sample.target = mask_target(sample, ["background", "cat"], 0)
    augment = {
        "hflip": True,
        "vflip": True,
        "rotation": 30.0,
        "random_resized_crop": True,
        "color_jitter": 0.0,
    }
    dataset = SegmentationDataset([sample], 24, [0.0] * 3, [1.0] * 3, augment)
    torch.manual_seed(0)
    filled = 0
    for _ in range(12):
        x, y, _ = dataset[0]
        assert x.shape == (3, 24, 24) and y.shape == (24, 24) and y.dtype == torch.long
        assert set(torch.unique(y).tolist()) <= {0, 1, IGNORE}  # nearest: no blended labels
        red = x[0] > 0.5
        inside = (y == 1) & red
        assert inside.sum() >= 0.8 * (y == 1).sum()  # the class follows its pixels
        filled += int((y == IGNORE).sum())
    assert filled > 0  # rotation brought in ignore corners at least once
    plain = SegmentationDataset([sample], 16, [0.0] * 3, [1.0] * 3, None)
    x, y, _ = plain[0]
    assert x.shape == (3, 16, 16) and set(torch.unique(y).tolist()) <= {0, 1, IGNORE}


def test_decoder_resizes_logits_to_the_original_size_and_counts_classes() -> None:
    logits = np.zeros((3, 4, 4), np.float32)
    logits[1, :, :2] = 5.0  # left half class 1
    logits[2, :, 2:] = 5.0  # right half class 2
    out = SegmentationDecoder().decode(
        {"logits": logits}, meta={"classes": ["background", "a", "b"]}, size=(10, 6), options={}
    )
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(out["mask"]["data"]))))
    assert mask.shape == (6, 10) and out["mask"]["width"] == 10 and out["mask"]["height"] == 6
    assert (mask[:, :5] == 1).all() and (mask[:, 5:] == 2).all()
    shares = {c["class"]: c for c in out["classes"]}
    assert set(shares) == {"a", "b"} and shares["a"]["pixels"] == 30
    assert shares["a"]["fraction"] == pytest.approx(0.5)
    assert resize_logits(logits, (4, 4)) is not None
    assert confusion(mask, mask, 3).trace() == 60


def test_deeplabv3plus_head_serves_any_feature_list() -> None:
    head = DeepLabV3PlusHead([8, 16, 32], [2, 4, 8], num_classes=3, channels=24)
    features = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)]
    head.eval()
    out = head(features)
    assert head.low_level == 1 and out.shape == (2, 3, 8, 8)  # stride-4 level picked
    wide, _ = build_segmenter("deeplabv3plus_small_cnn", 3, width=64)
    narrow, _ = build_segmenter("deeplabv3plus_small_cnn", 3, width=16)
    assert isinstance(wide, BackboneSegmenter)
    assert sum(p.numel() for p in wide.head.parameters()) > 2 * sum(
        p.numel() for p in narrow.head.parameters()
    )


@pytest.mark.parametrize(
    "model_id", ["unet_small", "deeplabv3plus_small_cnn", "lraspp_mobilenet_v3_large"]
)
def test_networks_return_logits_at_the_input_size(model_id: str) -> None:
    model, note = build_segmenter(model_id, 4, width=None if model_id != "unet_small" else 8)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 40, 56))
    assert out.shape == (2, 4, 40, 56) and note == "random-init"


@pytest.mark.slow
def test_every_catalog_network_builds_and_answers() -> None:
    for model_id in sorted(segmenter_ids()):
        model, _ = build_segmenter(model_id, 3, width=32)
        model.eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64), model_id


def test_local_pretrained_weights_are_used_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.models.segmentation as tvs

    reference_net = tvs.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)
    name = tvs.LRASPP_MobileNet_V3_Large_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    torch.save(reference_net.state_dict(), tmp_path / name)
    monkeypatch.setenv("STUDIO_WEIGHTS_DIR", str(tmp_path))
    model, note = build_segmenter("lraspp_mobilenet_v3_large", 4, pretrained=True)
    assert note == f"pretrained:{name}"
    ours = model.state_dict()
    for key, value in reference_net.state_dict().items():
        if key.startswith("classifier.") and key.endswith(
            (
                "low_classifier.weight",
                "high_classifier.weight",
                "low_classifier.bias",
                "high_classifier.bias",
            )
        ):
            assert ours[f"net.{key}"].shape != value.shape  # 4 classes, not 21
        else:
            assert torch.equal(ours[f"net.{key}"], value), key


def test_metrics_keep_the_deterministic_switch_as_they_found_it() -> None:
    rng = np.random.default_rng(1)
    truth, pred = rng.integers(0, 81, (2, 64, 64)), rng.integers(0, 81, (2, 64, 64))
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        metrics = PixelMetrics(81, background=0)
        metrics.update(torch.from_numpy(pred), torch.from_numpy(truth))
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    assert metrics.confusion().sum() == truth.size
    assert np.array_equal(metrics.confusion(), confusion(truth, pred, 81))
