"""Rotated boxes: exact rotated IoU against hand-computed values, the le90 convention, rotated
NMS, the KLD loss's symmetries, and joint image + box transforms that keep boxes on their
objects."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workers.ml.tasks.base import Ann, Sample
from workers.ml.tasks.oriented_detection.data import augment_matrix, obb_targets, warp
from workers.ml.tasks.oriented_detection.geometry import (
    corners,
    map_boxes,
    normalise_le90,
    rotated_iou,
    rotated_nms,
)
from workers.ml.tasks.oriented_detection.loss import assign, kld_loss
from workers.ml.tasks.oriented_detection.models import location_grid


def iou(a: list[float], b: list[float]) -> float:
    return float(rotated_iou(np.array([a]), np.array([b]))[0, 0])


def test_rotated_iou_matches_hand_computed_values() -> None:
    # Identical boxes, at any angle.
    assert iou([5, 5, 4, 2, 33], [5, 5, 4, 2, 33]) == pytest.approx(1.0)
    # A 2x2 square and the same square turned 45°: the overlap is a regular octagon of area
    # 8(√2 - 1), the union 8 - that, so IoU = 1/√2.
    assert iou([0, 0, 2, 2, 0], [0, 0, 2, 2, 45]) == pytest.approx(1 / math.sqrt(2), abs=1e-9)
    # Two 2x2 squares offset by 1 px: overlap 2, union 6.
    assert iou([0, 0, 2, 2, 0], [1, 0, 2, 2, 0]) == pytest.approx(1 / 3)
    # A 4x2 bar and the same bar turned 90°: a 2x2 overlap over a union of 12.
    assert iou([0, 0, 4, 2, 0], [0, 0, 4, 2, 90]) == pytest.approx(1 / 3)
    # 180° apart is the same box; so is the swapped-sides spelling.
    assert iou([3, 4, 6, 2, 20], [3, 4, 6, 2, 200]) == pytest.approx(1.0)
    assert iou([3, 4, 6, 2, 20], [3, 4, 2, 6, 110]) == pytest.approx(1.0)
    # Touching at an edge, disjoint, degenerate (zero area, even against itself).
    assert iou([0, 0, 2, 2, 0], [2, 0, 2, 2, 0]) == pytest.approx(0.0)
    assert iou([0, 0, 2, 2, 0], [10, 10, 2, 2, 30]) == 0.0
    assert iou([0, 0, 0, 2, 10], [0, 0, 0, 2, 10]) == 0.0
    assert iou([0, 0, 2, 2, 0], [0, 0, 3, 0, 45]) == 0.0
    # The matrix is [N, M] and symmetric in its arguments.
    a = np.array([[0, 0, 2, 2, 0], [1, 1, 3, 1, 30]])
    b = np.array([[0, 0, 2, 2, 45], [1, 0, 2, 2, 0], [9, 9, 1, 1, 0]])
    assert rotated_iou(a, b).shape == (2, 3)
    assert np.allclose(rotated_iou(a, b), rotated_iou(b, a).T)
    assert rotated_iou(a, np.zeros((0, 5))).shape == (2, 0)


def test_angles_are_normalised_into_le90() -> None:
    boxes = normalise_le90(
        np.array(
            [
                [0, 0, 2, 4, 0],  # short side first: swapped and turned a quarter
                [0, 0, 4, 2, 270],
                [0, 0, 4, 2, -100],
                [0, 0, 4, 2, 90],  # the interval is half-open: 90 is -90
                [0, 0, 4, 2, 45],
            ]
        )
    )
    assert boxes[:, 2].tolist() == [4, 4, 4, 4, 4] and boxes[:, 3].tolist() == [2, 2, 2, 2, 2]
    assert boxes[:, 4].tolist() == pytest.approx([-90, -90, 80, -90, 45])
    assert ((boxes[:, 4] >= -90) & (boxes[:, 4] < 90)).all()
    raw = np.array([[0, 0, 2, 4, 0], [0, 0, 4, 2, 270], [0, 0, 4, 2, -100]])
    assert np.diag(rotated_iou(raw, boxes[:3])) == pytest.approx([1, 1, 1])


def test_targets_drop_degenerate_boxes_and_normalise_angles() -> None:
    anns = [
        Ann("obb", "a", {"cx": 10, "cy": 10, "w": 4, "h": 8, "angle": 200}),
        Ann("obb", "a", {"cx": 10, "cy": 10, "w": 0, "h": 8, "angle": 0}),  # zero area
        Ann("obb", "b", {"cx": 10, "cy": 10, "w": 6, "h": 3, "angle": 0}, {"difficult": 1}),
        Ann("obb", "b", {"cx": 10, "cy": 10, "w": "x", "h": 3, "angle": 0}),
    ]
    target, dropped = obb_targets(Sample(1, __file__, annotations=anns), ["a", "b"])
    assert dropped == 2
    assert target["labels"] == [0] and target["ignore_labels"] == [1]
    cx, cy, w, h, angle = target["obb"][0]
    assert (cx, cy, w, h) == (10, 10, 8, 4) and angle == pytest.approx(math.radians(-70))


def test_rotated_nms_is_class_wise() -> None:
    boxes = np.array([[10, 10, 8, 4, 0], [10.5, 10, 8, 4, 5], [10, 10, 8, 4, 0], [30, 30, 8, 4, 0]])
    keep = rotated_nms(boxes, [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 0], 0.5, degrees=True)
    assert keep.tolist() == [0, 2, 3]


def test_kld_loss_is_zero_for_every_spelling_of_the_same_box() -> None:
    box = torch.tensor([[20.0, 30.0, 12.0, 4.0, 0.3]])
    twins = torch.tensor(
        [
            [20.0, 30.0, 12.0, 4.0, 0.3 + math.pi],
            [20.0, 30.0, 4.0, 12.0, 0.3 + math.pi / 2],
            [20.0, 30.0, 12.0, 4.0, 0.3 - math.pi],
        ]
    )
    assert kld_loss(twins, box.expand(3, -1)).max() < 1e-3
    worse = kld_loss(torch.tensor([[23.0, 30.0, 12.0, 4.0, 0.3]]), box)
    turned = kld_loss(torch.tensor([[20.0, 30.0, 12.0, 4.0, 0.8]]), box)
    assert worse > 0.05 and turned > 0.05


def test_every_box_gets_a_location_even_when_thin() -> None:
    points, strides = location_grid(64)
    boxes = torch.tensor([[20.0, 20.0, 30.0, 1.5, 0.4], [45.0, 45.0, 14.0, 6.0, -1.0]])
    owner, centerness = assign(points, strides, boxes)
    assert set(owner[owner >= 0].tolist()) == {0, 1}
    assert (centerness[owner >= 0] > 0).all() and (centerness[owner < 0] == 0).all()


@pytest.mark.parametrize(
    ("augment", "expect"),
    [
        ({"hflip": True}, lambda b: [64 - b[0], b[1], b[2], b[3], -b[4]]),
        ({"vflip": True}, lambda b: [b[0], 64 - b[1], b[2], b[3], -b[4]]),
    ],
)
def test_flips_mirror_boxes(augment, expect) -> None:  # type: ignore[no-untyped-def]
    box = [10.0, 20.0, 8.0, 2.0, math.radians(30)]

    class Always:
        def random(self) -> float:
            return 0.0

        def integers(self, n: int) -> int:
            return 0

        def uniform(self, a: float, b: float) -> float:
            return 0.0

    matrix = augment_matrix(64, augment, Always())  # type: ignore[arg-type]
    moved = map_boxes(np.array([box]), matrix)[0]
    assert moved == pytest.approx(expect(box))


def _bar_image(box: list[float], size: int = 64) -> torch.Tensor:
    from PIL import Image, ImageDraw

    picture = Image.new("L", (size, size), 0)
    points = corners(np.array([box]), degrees=False)[0]
    ImageDraw.Draw(picture).polygon([tuple(p) for p in points], fill=255)
    return torch.tensor(np.asarray(picture, np.float32) / 255.0)[None]


def _inside_mean(image: torch.Tensor, box: np.ndarray) -> float:
    return float((image[0] * _bar_image(list(box))[0]).sum() / _bar_image(list(box))[0].sum())


@pytest.mark.parametrize(
    "augment",
    [
        {"rotate90": True},
        {"rotation": 20.0},
        {"hflip": True, "vflip": True, "rotate90": True, "rotation": 10.0, "scale_jitter": 0.2},
    ],
)
def test_the_box_follows_the_object_through_any_transform(augment) -> None:  # type: ignore[no-untyped-def]
    box = [30.0, 26.0, 24.0, 6.0, math.radians(25)]
    image = _bar_image(box)
    rng = np.random.default_rng(3)
    for _ in range(5):
        matrix = augment_matrix(64, augment, rng)
        moved = map_boxes(np.array([box]), matrix)[0]
        assert -math.pi / 2 <= moved[4] < math.pi / 2 and moved[2] >= moved[3]
        warped = warp(image, matrix)
        # The warped bar fills its moved box (edges are resampled), and nothing of it is lost
        # elsewhere: its mass scales with the map's area factor.
        assert _inside_mean(warped, moved) > 0.8
        scale = abs(np.linalg.det(matrix[:, :2]))
        assert float(warped.sum()) == pytest.approx(float(image.sum()) * scale, rel=0.05)


def test_quarter_turn_turns_the_angle_by_ninety_degrees() -> None:
    box = np.array([[32.0, 20.0, 10.0, 4.0, math.radians(10)]])

    class Turn:
        def random(self) -> float:
            return 1.0

        def integers(self, n: int) -> int:
            return 1

        def uniform(self, a: float, b: float) -> float:
            return 0.0

    moved = map_boxes(box, augment_matrix(64, {"rotate90": True}, Turn()))[0]  # type: ignore[arg-type]
    assert moved[:4] == pytest.approx([44.0, 32.0, 10.0, 4.0])
    assert math.degrees(moved[4]) == pytest.approx(-80.0)


def test_rotated_nms_keeps_what_greedy_nms_over_the_whole_iou_matrix_keeps() -> None:
    """The pruned NMS (only the pairs greedy NMS reads, skipping pairs whose circles or area
    ratio rule a suppression out) against the plain algorithm on the full IoU matrix."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        n = int(rng.integers(1, 120))
        boxes = np.stack(
            [
                rng.uniform(0, 64, n),
                rng.uniform(0, 64, n),
                rng.uniform(0, 30, n) * (rng.random(n) > 0.05),  # some degenerate
                rng.uniform(1, 20, n),
                rng.uniform(-90, 90, n),
            ],
            1,
        )
        if trial % 4 == 0:  # clusters of near-copies, as a trained model's locations give
            boxes[n // 2 :] = boxes[: n - n // 2] + rng.normal(0, 1.5, (n - n // 2, 5))
        scores = rng.random(n)
        scores[: n // 3] = 0.5  # ties keep their order
        labels = rng.integers(0, 3, n)
        threshold = float(rng.choice([0.1, 0.3, 0.5, 0.7]))
        order = np.argsort(-scores, kind="stable")
        iou = rotated_iou(boxes[order], boxes[order])
        same = labels[order][:, None] == labels[order][None, :]
        suppressed = np.zeros(n, bool)
        expected = []
        for i in range(n):
            if suppressed[i]:
                continue
            expected.append(int(order[i]))
            suppressed |= same[i] & (iou[i] > threshold)
        kept = rotated_nms(boxes, scores, labels, threshold, degrees=True)
        assert kept.tolist() == expected, trial


def test_kld_loss_runs_in_float32_under_mixed_precision() -> None:
    """Under autocast the head's boxes arrive in 16 bits; the 2x2 determinants of thin boxes
    need float32 (CUDA has no half-precision `det`; the CUDA check found the failure)."""
    pred = torch.tensor([[20.0, 30.0, 12.0, 3.0, 0.3], [40.0, 41.0, 30.0, 2.0, -1.2]])
    target = torch.tensor([[21.0, 29.0, 11.0, 3.5, 0.25], [40.0, 40.0, 28.0, 2.5, -1.1]])
    expected = kld_loss(pred, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = kld_loss(pred.bfloat16(), target)
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=2e-2)
