"""Detection exports in every format: TorchScript and INT8 ONNX next to fp32 ONNX, judged by
the task's box-matching parity on real images with their truth."""

from __future__ import annotations

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
from workers.ml.tasks.detection.export import OUTPUTS, ExportedDetector, parity
from workers.ml.tasks.detection.models import build_detector

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fmt", ["torchscript", "onnx_int8"])
def test_detection_exports_in_every_format_with_box_parity(fmt: str, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    info = write_dataset("detection", folder, images=6, size=64, seed=3)
    samples, classes = studio_samples(folder, "detection", info["format"])
    torch.manual_seed(0)
    network, _ = build_detector("fcos_small", len(classes), 64, {"score_threshold": 0.05}, False)
    model = InferenceModel(network.eval(), "detection", classes, 64, [0.5] * 3, [0.25] * 3)
    inputs = np.stack([preprocess(load_image(s.path), model).numpy() for s in samples])
    spec = ExportSpec(
        "detection",
        classes,
        64,
        [0.5] * 3,
        [0.25] * 3,
        list(OUTPUTS),
        batch=1,
        output_axes={name: {0: "detections"} for name in OUTPUTS},
        info={"score_threshold": 0.05},
        script=True,
    )

    def compare(fmt: str, reference, candidate, meta):  # type: ignore[no-untyped-def]
        return parity(fmt=fmt, reference=reference, candidate=candidate, samples=samples, meta=meta)

    suffix = ".pt" if fmt == "torchscript" else ".onnx"
    out = run_export(
        ExportedDetector(network).eval(),
        spec=spec,
        fmt=fmt,
        path=tmp_path / f"det{suffix}",
        inputs=inputs,
        compare=compare,
    )
    report = out["validation"]
    assert report["samples"] == 6 and report["detections"] > 0
    names = {c["name"] for c in report["checks"]}
    if fmt == "torchscript":
        assert out["valid"] and report["matched_fraction"] == 1.0, report["checks"]
        assert names == {"matched_fraction", "max_box_diff", "max_score_diff", "map50_delta"}
    else:
        assert "matched_fraction" in names and "max_box_diff" not in names
        assert out["valid"] == all(c["passed"] for c in report["checks"])
