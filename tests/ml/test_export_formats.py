"""Export functions on a small hand-made CNN: real torch.onnx, onnx.checker, onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from workers.ml.export.pipeline import run_export
from workers.ml.export.spec import ExportSpec
from workers.ml.tasks import get_task_code
from workers.ml.tasks.base import Ann, Sample
from workers.ml.tasks.classification.export import parity

CLASSES = ["cat", "dog", "fox"]


def labelled(targets: list[int], classes: list[str] = CLASSES) -> list[Sample]:
    return [
        Sample(image_id=i, path=Path(f"{i}.png"), annotations=[Ann("label", classes[t])])
        for i, t in enumerate(targets)
    ]


def compare(targets: list[int]):  # type: ignore[no-untyped-def]
    """The classification task's parity check on samples with these true labels."""

    def run(fmt, reference, candidate, meta):  # type: ignore[no-untyped-def]
        return parity(
            fmt=fmt, reference=reference, candidate=candidate, samples=labelled(targets), meta=meta
        )

    return run


def per_image(logits: np.ndarray) -> list[dict[str, np.ndarray]]:
    return [{"logits": row} for row in logits]


def tiny_cnn(classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, classes),
    ).eval()


@pytest.fixture
def spec() -> ExportSpec:
    return ExportSpec(
        task="classification",
        classes=list(CLASSES),
        image_size=16,
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25],
        output_names=["logits"],
    )


def batch(n: int = 12) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 16, 16)).astype(np.float32)


def test_onnx_export_has_dynamic_batch_named_output_and_metadata(
    tmp_path: Path, spec: ExportSpec
) -> None:
    model = tiny_cnn()
    inputs = batch()
    targets = [int(t) for t in model(torch.from_numpy(inputs)).argmax(1)]
    out = run_export(
        model,
        spec=spec,
        fmt="onnx",
        path=tmp_path / "m.onnx",
        inputs=inputs,
        compare=compare(targets),
        metadata_extra={"studio_version": "0.1.0"},
    )
    proto = onnx.load(str(out["path"]))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["classes"]) == ["cat", "dog", "fox"]
    assert json.loads(props["preprocess"])["resize"] == [16, 16]
    assert props["task"] == "classification" and props["studio_version"] == "0.1.0"
    session = ort.InferenceSession(str(out["path"]))
    assert [o.name for o in session.get_outputs()] == ["logits"]
    assert session.get_inputs()[0].shape[0] == "batch"
    assert session.run(None, {"input": inputs[:5]})[0].shape == (5, 3)
    report = out["validation"]
    assert out["valid"] and report["max_abs_diff"] <= 1e-4
    assert report["top1_agreement"] == 1.0 and report["metric_checkpoint"] == 1.0
    assert report["metric_delta"] == 0.0 and report["samples"] == 12


def test_torchscript_and_int8_exports_validate(tmp_path: Path, spec: ExportSpec) -> None:
    model = tiny_cnn()
    inputs = batch(40)
    targets = [int(t) for t in model(torch.from_numpy(inputs)).argmax(1)]
    ts = run_export(
        model,
        spec=spec,
        fmt="torchscript",
        path=tmp_path / "m.pt",
        inputs=inputs,
        compare=compare(targets),
    )
    assert ts["valid"] and ts["validation"]["max_abs_diff"] <= 1e-4
    extra = {"studio.json": ""}
    loaded = torch.jit.load(str(ts["path"]), _extra_files=extra)
    assert json.loads(extra["studio.json"])["classes"] == spec.classes
    assert loaded(torch.from_numpy(inputs[:7])).shape == (7, 3)

    q = run_export(
        model,
        spec=spec,
        fmt="onnx_int8",
        path=tmp_path / "q.onnx",
        inputs=inputs,
        compare=compare(targets),
    )
    report = q["validation"]
    assert {c["name"] for c in report["checks"]} == {"top1_agreement", "metric_drop"}
    # The quantized model must pass its own parity checks on these inputs, not merely report.
    assert q["valid"] is True and report["valid"] is True
    assert all(check["passed"] for check in report["checks"])
    assert report["top1_agreement"] >= 0.97 and report["metric_delta"] >= -0.01
    ops = {n.op_type for n in onnx.load(str(q["path"])).graph.node}
    assert ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
    assert not (tmp_path / "q.fp32.onnx").exists()


def test_parity_report_fails_a_diverging_export() -> None:
    meta = {"task": "classification", "classes": ["a", "b"]}
    samples = labelled([0, 1], ["a", "b"])
    reference = np.array([[2.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    candidate = reference + np.float32(1e-3)
    report = parity(
        fmt="onnx",
        reference=per_image(reference),
        candidate=per_image(candidate),
        samples=samples,
        meta=meta,
    )
    assert not report["valid"]
    assert report["checks"][0]["name"] == "max_abs_diff" and not report["checks"][0]["passed"]
    flipped = np.array([[0.0, 2.0], [0.0, 2.0]], dtype=np.float32)
    int8 = parity(
        fmt="onnx_int8",
        reference=per_image(reference),
        candidate=per_image(flipped),
        samples=samples,
        meta=meta,
    )
    assert int8["top1_agreement"] == 0.5 and int8["metric_delta"] == -0.5 and not int8["valid"]


def test_classification_decoding_single_and_multi_label() -> None:
    decoder = get_task_code("classification").decoder
    logits = np.array([[0.0, 3.0, 1.0]])
    one = {"logits": logits[0]}
    meta = {"classes": ["a", "b", "c"]}
    single = decoder.decode(one, meta=meta, size=(8, 8), options={"top_k": 2})
    assert [t["class"] for t in single["top"]] == ["b", "c"]
    assert single["labels"][0]["class"] == "b"
    every = decoder.decode(one, meta=meta, size=(8, 8), options={})["top"]
    assert abs(sum(t["score"] for t in every) - 1) < 1e-9
    multi_meta = {"classes": ["a", "b", "c"], "multi_label": True, "thresholds": [0.5, 0.5, 0.7]}
    multi = decoder.decode(one, meta=multi_meta, size=(8, 8), options={})
    # sigmoid(1.0) = 0.73 ≥ 0.7, sigmoid(0) = 0.5 ≥ 0.5
    assert {t["class"] for t in multi["labels"]} == {"a", "b", "c"}
    assert decoder.metric(logits, [[0, 1, 2]], meta=multi_meta) == 1.0
    assert decoder.metric(logits, [[1]], meta=multi_meta) == 0.0


@pytest.mark.parametrize("opset", [13, 20])
def test_other_opsets_export_and_match(tmp_path: Path, spec: ExportSpec, opset: int) -> None:
    model = tiny_cnn()
    inputs = batch(4)
    out = run_export(
        model,
        spec=spec,
        fmt="onnx",
        path=tmp_path / "m.onnx",
        inputs=inputs,
        compare=compare([0] * 4),
        opset=opset,
    )
    assert onnx.load(str(out["path"])).opset_import[0].version == opset
    assert out["validation"]["max_abs_diff"] <= 1e-4 and out["metadata"]["opset"] == opset


def test_unsupported_opset_is_refused(tmp_path: Path, spec: ExportSpec) -> None:
    with pytest.raises(ValueError, match="13-20"):
        run_export(
            tiny_cnn(),
            spec=spec,
            fmt="onnx",
            path=tmp_path / "m.onnx",
            inputs=batch(2),
            compare=compare([0, 0]),
            opset=9,
        )
    assert not (tmp_path / "m.onnx").exists()
