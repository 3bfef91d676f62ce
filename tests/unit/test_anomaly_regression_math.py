"""The numbers behind anomaly detection and regression: AUROC (against scikit-learn), AUPRO,
threshold calibration, the anomaly decoder's PNG map, regression metrics with an undefined R²,
quantile-bin stratification and the checks before training."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from app.errors import Invalid
from app.tasks.anomaly import check_training as anomaly_check
from app.tasks.registry import AnnotationRow
from app.tasks.regression import check_training as regression_check
from app.tasks.regression import quantile_edges, stratify
from workers.ml.tasks.anomaly.decode import AnomalyDecoder
from workers.ml.tasks.anomaly.metrics import (
    at_threshold,
    aupro,
    auroc,
    calibrate,
    fpr_threshold,
    pixel_auroc,
)
from workers.ml.tasks.regression.decode import RegressionDecoder
from workers.ml.tasks.regression.metrics import regression_metrics


def test_auroc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.3
    scores = np.round(rng.normal(size=400) + labels, 1)  # rounded: many ties
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert auroc(scores, np.zeros(400, bool)) is None  # one class only: undefined


def test_aupro_is_one_for_a_perfect_map_and_low_for_noise() -> None:
    rng = np.random.default_rng(1)
    masks = np.zeros((6, 32, 32), bool)
    masks[1, 4:10, 4:10] = True
    masks[2, 20:28, 2:6] = True
    masks[2, 1:3, 25:30] = True  # a second region in the same image counts on its own
    perfect = np.where(masks, 1.0, rng.random(masks.shape) * 0.5)
    assert aupro(perfect, masks) == pytest.approx(1.0, abs=0.01)
    assert pixel_auroc(perfect, masks) == pytest.approx(1.0)
    noise = aupro(rng.random(masks.shape), masks)
    assert noise is not None and noise < 0.3  # chance level is about 0.15
    assert aupro(perfect, np.zeros_like(masks)) is None


def test_threshold_rules_max_f1_then_false_alarm_rate() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.8, 0.9, 0.4])
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    found = calibrate(scores, labels, 0.01)
    assert found["rule"] == "max_f1" and found["threshold"] == 0.4
    assert at_threshold(scores, labels, found["threshold"])["f1"] == 1.0
    normals = np.arange(100, dtype=float)
    only = calibrate(normals, np.zeros(100), 0.05)
    assert only["rule"] == "false_alarm_rate_0.05"
    flagged = (normals >= only["threshold"]).sum()
    assert flagged == 5  # exactly the allowed 5 % of normal images
    assert fpr_threshold(np.array([1.0, 2.0]), 0.01) > 2.0  # too few to allow any false alarm


def test_anomaly_decoder_gives_verdict_threshold_and_a_png_map_in_original_pixels() -> None:
    anomaly_map = np.zeros((1, 8, 8), np.float32)
    anomaly_map[0, 2:4, 2:4] = 1.0
    meta = {"threshold": 0.5, "map_range": [0.0, 1.0]}
    out = AnomalyDecoder().decode(
        {"score": np.array(0.9), "map": anomaly_map}, meta=meta, size=(40, 20), options={}
    )
    assert out["anomalous"] is True and out["threshold"] == 0.5 and out["score"] == 0.9
    header, data = out["map"].split(",", 1)
    assert header == "data:image/png;base64"
    picture = Image.open(io.BytesIO(base64.b64decode(data)))
    assert picture.size == (40, 20) and picture.mode == "L"
    assert np.asarray(picture).max() == 255 and np.asarray(picture)[0, 0] == 0
    # a threshold changed after the export (a decision setting) wins over the metadata's
    changed = AnomalyDecoder().decode(
        {"score": np.array(0.9), "map": anomaly_map},
        meta=meta,
        size=(8, 8),
        options={"threshold": 0.95},
    )
    assert changed["anomalous"] is False and changed["threshold"] == 0.95


def test_regression_metrics_and_undefined_r2() -> None:
    true = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0]])
    pred = np.array([[1.5, 5.0], [2.0, 4.0], [2.5, 5.0], [4.0, 6.0]])
    found = regression_metrics(pred, true, ["length", "const"])
    length, const = found["per_target"]
    assert length["mae"] == pytest.approx(0.25) and length["mse"] == pytest.approx(0.125)
    assert length["r2"] == pytest.approx(1 - 0.5 / 5.0)
    assert const["r2"] is None  # a target that does not vary has no R2
    assert found["r2"] == pytest.approx(length["r2"]) and found["r2_undefined"] == ["const"]
    assert found["mae"] == pytest.approx((0.25 + 0.5) / 2)
    decoded = RegressionDecoder().decode(
        {"values": np.array([1.25, -3.0])}, meta={"targets": ["a", "b"]}, size=(1, 1), options={}
    )
    assert decoded == {"values": {"a": 1.25, "b": -3.0}}


def _value_rows(values: list[float], names: list[str] | None = None) -> list[AnnotationRow]:
    return [
        AnnotationRow(i, "value", None, {"values": [v, 0.0], "names": names or ["len", "b"]}, {})
        for i, v in enumerate(values)
    ]


def test_regression_splits_stratify_on_quantile_bins_of_the_first_target() -> None:
    values = [float(v) for v in range(100)]
    assert quantile_edges(values, 5) == [20.0, 40.0, 60.0, 80.0]
    tokens = stratify(_value_rows(values))
    bins = sorted({next(iter(t)) for t in tokens.values()})
    assert len(bins) == 5 and all(b.startswith("len ") for b in bins)
    counts = [sum(1 for t in tokens.values() if b in t) for b in bins]
    assert counts == [20] * 5
    assert len({next(iter(t)) for t in stratify(_value_rows(values[:25])).values()}) == 2


def test_checks_before_training_name_what_is_missing() -> None:
    with pytest.raises(Invalid) as constant:
        regression_check({"train": _value_rows([3.0] * 10)}, {})
    assert constant.value.code == "constant_target" and "'len' is 3" in constant.value.message
    assert constant.value.details["targets"] == ["len", "b"]  # the second column is 0.0 too
    varying = [
        AnnotationRow(i, "value", None, {"values": [float(i), float(i % 2)]}, {}) for i in range(4)
    ]
    regression_check({"train": varying}, {})  # both vary: nothing to say
    with pytest.raises(Invalid) as none:
        regression_check({"train": []}, {})
    assert none.value.code == "no_targets"
    anomalous = [AnnotationRow(i, "label", "anomalous", {}, {}) for i in range(3)]
    with pytest.raises(Invalid) as no_normal:
        anomaly_check({"train": anomalous}, {"mode": "auto"})
    assert no_normal.value.code == "no_normal_images"
    normal = [AnnotationRow(i, "label", "normal", {}, {}) for i in range(3)]
    anomaly_check({"train": normal}, {"mode": "unsupervised"})
    with pytest.raises(Invalid) as supervised:
        anomaly_check({"train": normal}, {"mode": "supervised"})
    assert supervised.value.code == "no_anomalous_images"


def test_score_parity_tolerates_float32_rounding_but_not_a_real_change() -> None:
    """A barely trained detector scores everything near 1.0 (validation range ~1e-3): one
    float32 step then exceeds 1e-4 of the range, and that must not fail the export."""
    from workers.ml.tasks.anomaly.export import parity
    from workers.ml.tasks.base import Ann, Sample

    scores = np.float32(0.999) + np.linspace(0, 1e-3, 6, dtype=np.float32)
    samples = [
        Sample(i, Path(f"{i}.png"), annotations=[Ann("label", "anomalous" if i % 2 else "normal")])
        for i in range(6)
    ]

    def outputs(values: np.ndarray) -> list[dict[str, np.ndarray]]:
        return [{"score": np.array([v]), "map": np.full((1, 4, 4), v)} for v in values]

    meta = {"score_range": [0.999, 1.0], "threshold": 0.9995}
    ulp = np.nextafter(scores, np.float32(2), dtype=np.float32)
    rounded = parity(
        fmt="onnx", reference=outputs(scores), candidate=outputs(ulp), samples=samples, meta=meta
    )
    assert rounded["valid"] is True, rounded["checks"]
    changed = parity(
        fmt="onnx",
        reference=outputs(scores),
        candidate=outputs(scores + np.float32(2e-5)),
        samples=samples,
        meta=meta,
    )
    assert changed["valid"] is False
    assert not next(c for c in changed["checks"] if c["name"] == "score_diff_relative")["passed"]
