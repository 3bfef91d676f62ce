"""The classification metrics agree with scikit-learn's on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from workers.ml.tasks.classification.eval_metrics import multiclass_metrics, multilabel_metrics


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = 200, 6
    targets = rng.integers(0, c - 1, n)  # the last class never occurs in the ground truth
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), targets] += rng.uniform(0, 2.5, n)  # better than chance, not perfect
    probs = _softmax(logits)
    preds = probs.argmax(1)
    classes = [f"c{i}" for i in range(c)]

    got = multiclass_metrics(torch.from_numpy(probs), torch.from_numpy(targets), classes)

    approx = pytest.approx
    assert got["accuracy"] == sk.accuracy_score(targets, preds)  # exact, not approximate
    assert got["balanced_accuracy"] == approx(sk.balanced_accuracy_score(targets, preds))
    for avg in ("macro", "micro"):
        assert got[f"precision_{avg}"] == approx(
            sk.precision_score(targets, preds, average=avg, zero_division=0)
        )
        assert got[f"recall_{avg}"] == approx(
            sk.recall_score(targets, preds, average=avg, zero_division=0)
        )
        assert got[f"f1_{avg}"] == approx(sk.f1_score(targets, preds, average=avg, zero_division=0))
    labels = list(range(c))
    per_p = sk.precision_score(targets, preds, average=None, labels=labels, zero_division=0)
    per_r = sk.recall_score(targets, preds, average=None, labels=labels, zero_division=0)
    per_f = sk.f1_score(targets, preds, average=None, labels=labels, zero_division=0)
    for row in got["per_class"]:
        i = row["index"]
        assert (row["precision"], row["recall"], row["f1"]) == (
            approx(per_p[i]),
            approx(per_r[i]),
            approx(per_f[i]),
        )
        assert row["support"] == int((targets == i).sum())
    assert got["confusion_matrix"] == sk.confusion_matrix(targets, preds, labels=labels).tolist()
    for k in (3, 5):
        assert got[f"top{k}_accuracy"] == approx(
            sk.top_k_accuracy_score(targets, probs, k=k, labels=labels)
        )
    # one-vs-rest ROC-AUC over the classes that occur (sklearn needs scores for those only)
    occurring = sorted(set(targets.tolist()))
    aucs = [sk.roc_auc_score(targets == i, probs[:, i]) for i in occurring]
    assert got["roc_auc_macro"] == approx(float(np.mean(aucs)))
    assert got["per_class"][c - 1]["roc_auc"] is None


@pytest.mark.parametrize("seed", [0, 1])
def test_multilabel_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = 150, 5
    targets = (rng.uniform(size=(n, c)) < 0.35).astype(int)
    scores = np.clip(targets * 0.35 + rng.uniform(0, 0.65, size=(n, c)), 0, 1)
    thresholds = [0.5, 0.4, 0.6, 0.5, 0.3]
    preds = (scores >= np.array(thresholds)).astype(int)
    classes = [f"l{i}" for i in range(c)]

    got = multilabel_metrics(
        torch.from_numpy(scores), torch.from_numpy(targets), classes, thresholds
    )

    approx = pytest.approx
    assert got["thresholds"] == approx(thresholds)
    assert got["subset_accuracy"] == sk.accuracy_score(targets, preds)
    assert got["hamming_loss"] == approx(sk.hamming_loss(targets, preds))
    for avg in ("macro", "micro"):
        assert got[f"precision_{avg}"] == approx(
            sk.precision_score(targets, preds, average=avg, zero_division=0)
        )
        assert got[f"recall_{avg}"] == approx(
            sk.recall_score(targets, preds, average=avg, zero_division=0)
        )
        assert got[f"f1_{avg}"] == approx(sk.f1_score(targets, preds, average=avg, zero_division=0))
    aps = sk.average_precision_score(targets, scores, average=None)
    for row in got["per_class"]:
        assert row["ap"] == approx(aps[row["index"]])
        assert row["roc_auc"] == approx(
            sk.roc_auc_score(targets[:, row["index"]], scores[:, row["index"]])
        )
    assert got["map"] == approx(sk.average_precision_score(targets, scores, average="macro"))
    assert got["roc_auc_macro"] == approx(sk.roc_auc_score(targets, scores, average="macro"))


def test_perfect_and_empty_inputs() -> None:
    targets = torch.tensor([0, 1, 2, 1])
    probs = torch.nn.functional.one_hot(targets, 3).double()
    got = multiclass_metrics(probs, targets, ["a", "b", "c"])
    assert got["accuracy"] == 1.0 and got["f1_macro"] == 1.0
    assert "top3_accuracy" not in got  # k must be below the number of classes
    with pytest.raises(ValueError):
        multiclass_metrics(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), ["a", "b", "c"])
