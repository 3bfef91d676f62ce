"""Oriented-detection export: the graph up to NMS in ONNX (and TorchScript), judged by
rotated-box matching after the numpy decoding; and the decoder on hand-made raw outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.synthetic import write_dataset
from benchmarks.task_quality import studio_samples
from workers.ml.checkpoints import preprocess
from workers.ml.data import load_image
from workers.ml.export.pipeline import run_export
from workers.ml.export.spec import ExportSpec
from workers.ml.tasks.base import InferenceModel
from workers.ml.tasks.oriented_detection.decode import OrientedDecoder
from workers.ml.tasks.oriented_detection.export import export_module, parity
from workers.ml.tasks.oriented_detection.geometry import corners
from workers.ml.tasks.oriented_detection.models import build_oriented


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_keeps_rotated_boxes_within_tolerance(fmt: str, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    info = write_dataset("oriented_detection", folder, images=5, size=64, seed=2)
    samples, classes = studio_samples(folder, "oriented_detection", info["format"])
    torch.manual_seed(0)
    network, _ = build_oriented("rotated_fcos_small", len(classes), 64, False)
    with torch.no_grad():  # confident, spread-out detections instead of an untrained haze
        network.cls_logits.bias.fill_(0.5)
    heads = {"score_threshold": 0.05, "nms_iou": 0.3, "max_detections": 50}
    model = InferenceModel(
        network.eval(), "oriented_detection", classes, 64, [0.5] * 3, [0.25] * 3, info=heads
    )
    wrapped = export_module(model)
    inputs = np.stack([preprocess(load_image(s.path), model).numpy() for s in samples])
    spec = ExportSpec(
        "oriented_detection",
        classes,
        64,
        [0.5] * 3,
        [0.25] * 3,
        wrapped.output_names,
        postprocess_spec=wrapped.postprocess,
        info=heads,
    )

    def compare(fmt: str, reference, candidate, meta):  # type: ignore[no-untyped-def]
        return parity(fmt=fmt, reference=reference, candidate=candidate, samples=samples, meta=meta)

    out = run_export(
        wrapped.module,
        spec=spec,
        fmt=fmt,
        path=tmp_path / ("model.onnx" if fmt == "onnx" else "model.pt"),
        inputs=inputs,
        compare=compare,
    )
    report = out["validation"]
    assert out["valid"], report["checks"]
    assert report["detections"] > 0 and report["matched_fraction"] == 1.0
    assert {c["name"] for c in report["checks"]} >= {"matched_fraction", "max_box_diff"}
    meta = out["metadata"]
    assert meta["outputs"] == ["obb", "scores"] and meta["postprocess"]["nms_iou"] == 0.3


def test_decoder_thresholds_suppresses_and_scales_to_the_original_image() -> None:
    # Three locations, two classes, a 64 px input; the original image is 128 x 64.
    obb = np.array(
        [
            [32.0, 32.0, 20.0, 8.0, math.radians(30)],
            [33.0, 32.0, 20.0, 8.0, math.radians(32)],  # the same object: suppressed
            [10.0, 50.0, 4.0, 12.0, 0.0],  # short side first: normalised to le90
        ]
    )
    scores = np.array([[0.9, 0.1], [0.8, 0.1], [0.2, 0.6]])
    meta = {
        "classes": ["plane", "ship"],
        "input": {"shape": ["batch", 3, 64, 64]},
        "score_threshold": 0.5,
        "postprocess": {"nms_iou": 0.3, "max_detections": 10},
    }
    out = OrientedDecoder().decode(
        {"obb": obb, "scores": scores}, meta=meta, size=(64, 64), options={}
    )["objects"]
    assert [(o["class"], o["score"]) for o in out] == [("plane", 0.9), ("ship", 0.6)]
    assert out[0]["obb"] == {"cx": 32.0, "cy": 32.0, "w": 20.0, "h": 8.0, "angle": 30.0}
    assert out[1]["obb"]["w"] == 12.0 and out[1]["obb"]["angle"] == -90.0
    box = [out[0]["obb"][k] for k in ("cx", "cy", "w", "h", "angle")]
    assert np.allclose(out[0]["points"], corners(np.array([box]))[0], atol=0.02)
    # A lower request threshold lets the weaker ship in; an axis-aligned box stretches with
    # the image (x doubles).
    low = OrientedDecoder().decode(
        {"obb": obb, "scores": scores}, meta=meta, size=(128, 64), options={"score_threshold": 0.15}
    )["objects"]
    assert len(low) == 3
    ship = next(o for o in low if o["class"] == "ship" and o["score"] == 0.6)
    assert ship["obb"]["cx"] == 20.0 and ship["obb"]["cy"] == 50.0
    assert {ship["obb"]["w"], ship["obb"]["h"]} == {12.0, 8.0}
