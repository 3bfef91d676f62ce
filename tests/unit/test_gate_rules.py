"""The dual-head gate's rules on hand-made numbers: the familiarity reference and distance,
the calibrated foreground range, the order of the verdict's reasons, and the example script's
restatement of the same decision."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workers.ml.tasks.classification.dual_head import gate

CHANNELS = ["tissue"]


def _measures(ratio: float, component: int = 10_000, distance: float | None = None) -> dict:
    return {
        "foreground_ratio": ratio,
        "largest_component": component,
        "channels": {"tissue": ratio},
        "side": 224,
        "feature_distance": distance,
    }


def test_reference_and_distance_in_training_standard_deviations() -> None:
    a = np.array([[0.0, 0.0], [2.0, 0.0]])  # mean (1, 0), residuals ±1 on dim 0
    b = np.array([[10.0, 1.0], [10.0, -1.0]])  # mean (10, 0), residuals ±1 on dim 1
    reference = gate.feature_reference({"a": a, "b": b})
    assert reference is not None
    assert reference["classes"] == ["a", "b"]
    assert reference["means"] == [[1.0, 0.0], [10.0, 0.0]]
    # pooled within-class spread: dim 0 sqrt((1+1+0+0)/4), dim 1 the same
    assert reference["scale"] == pytest.approx([2**-0.5, 2**-0.5], abs=1e-6)
    # at class a's mean: 0; one spread away on both dims: RMS 1
    assert gate.feature_distance(np.array([1.0, 0.0]), reference) == pytest.approx(0.0)
    one = np.array([1.0 + 2**-0.5, 2**-0.5])
    assert gate.feature_distance(one, reference) == pytest.approx(1.0, abs=1e-5)
    # nearest class wins
    assert gate.feature_distance(np.array([10.0, 0.0]), reference) == pytest.approx(0.0)
    # another model's embedding size: the rule cannot apply
    assert gate.feature_distance(np.zeros(3), reference) is None
    assert gate.feature_reference({}) is None


def test_a_dimension_that_never_varies_gets_a_floor_not_a_zero_scale() -> None:
    flat = np.array([[0.0, 5.0, 1.0], [2.0, 5.0, 3.0], [4.0, 5.0, 5.0]])
    reference = gate.feature_reference({"a": flat})
    assert reference is not None
    scale = reference["scale"]
    spread = (8 / 3) ** 0.5  # dims 0 and 2: residuals -2, 0, 2
    assert scale[0] == pytest.approx(spread, abs=1e-5) and scale[2] == scale[0]
    assert scale[1] == pytest.approx(gate.SCALE_FLOOR * spread, abs=1e-5)  # the median's 10 %
    assert np.isfinite(gate.feature_distance(np.array([2.0, 6.0, 3.0]), reference))


def test_calibration_sets_the_foreground_range_and_the_familiarity_limit() -> None:
    ratios = {"leaf": [0.20, 0.22, 0.25, 0.30, 0.28], "rare": [0.5, 0.6]}
    reference = {"classes": ["leaf"], "means": [[0.0]], "scale": [1.0]}
    out = gate.calibrate(ratios, distances=[0.8, 1.0, 1.2, 0.9, 1.6], reference=reference)
    rules = out["rules"]
    p5 = float(np.percentile(ratios["leaf"], 5))
    assert rules["min_ratio"] == {"leaf": pytest.approx(p5 - 0.1)}
    assert rules["max_ratio"] == {"leaf": pytest.approx(0.30 + 0.1)}  # rare: too few images
    assert rules["max_feature_distance"] == pytest.approx(1.6 * 1.25)
    assert rules["feature_reference"] is reference
    assert out["calibration"]["per_class"]["leaf"]["max"] == 0.30
    assert out["calibration"]["feature_distance"] == {"images": 5, "p50": 1.0, "max": 1.6}
    # too few calibration distances, or no reference: the rule stays off
    few = gate.calibrate(ratios, distances=[1.0, 1.1], reference=reference)["rules"]
    assert few["max_feature_distance"] is None and few["feature_reference"] is None
    none = gate.calibrate(ratios, distances=[1.0] * 6, reference=None)["rules"]
    assert none["max_feature_distance"] is None


def test_verdict_reasons_in_order() -> None:
    rules = gate.calibrate(
        {"leaf": [0.2, 0.25, 0.3, 0.3, 0.3]},
        distances=[1.0] * 5,
        reference={"classes": ["leaf"], "means": [[0.0]], "scale": [1.0]},
    )["rules"]
    unfamiliar = gate.verdict(_measures(0.3, distance=9.0), rules, "leaf")
    assert not unfamiliar["passed"] and unfamiliar["reason"].startswith("unfamiliar image")
    everywhere = gate.verdict(_measures(0.97, distance=1.0), rules, "leaf")
    assert not everywhere["passed"] and everywhere["reason"].startswith("foreground everywhere")
    little = gate.verdict(_measures(0.05, distance=1.0), rules, "leaf")
    assert little["reason"].startswith("insufficient foreground")
    scattered = gate.verdict(_measures(0.3, component=20, distance=1.0), rules, "leaf")
    assert scattered["reason"].startswith("no coherent object")
    fine = gate.verdict(_measures(0.3, distance=1.1), rules, "leaf")
    assert fine["passed"] and fine["max_ratio"] == pytest.approx(0.4)
    # an uncalibrated class has no upper bound; without a distance the rule does not apply
    other = gate.verdict(_measures(0.97, distance=None), rules, "other")
    assert other["passed"], other


def _example_script() -> Any:
    path = Path(__file__).resolve().parents[2] / "examples" / "predict_onnx.py"
    spec = importlib.util.spec_from_file_location("predict_onnx_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_script_decides_as_the_studio_does() -> None:
    script = _example_script()
    reference = gate.feature_reference(
        {"leaf": np.array([[0.0, 0.0], [1.0, 1.0]]), "spot": np.array([[5.0, 5.0], [6.0, 4.0]])}
    )
    rules = gate.calibrate(
        {"leaf": [0.2, 0.25, 0.3, 0.3, 0.3]}, distances=[1.0] * 5, reference=reference
    )["rules"]
    meta = {"gate": rules, "segmentation": {"exclusive": False, "channels": CHANNELS}}
    rng = np.random.default_rng(0)
    for ratio in (0.02, 0.3, 0.95):
        probs = np.zeros((1, 32, 32))
        side = round(32 * ratio**0.5)
        probs[0, :side, :side] = 0.9
        for embedding in (np.array([0.5, 0.5]), np.array([40.0, -30.0]), rng.normal(size=2)):
            studio = gate.measure(probs, False, CHANNELS)
            studio["feature_distance"] = gate.feature_distance(embedding, reference)
            mine = gate.verdict(studio, rules, "leaf")
            theirs = script.gate(probs, meta, "leaf", embedding)
            assert theirs["passed"] == mine["passed"], (ratio, embedding)
            assert theirs["reason"].split(" (")[0] == mine["reason"].split(" (")[0]
            assert theirs["feature_distance"] == pytest.approx(mine["feature_distance"])
